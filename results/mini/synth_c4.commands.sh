# Commands of scripts/reproduce_synth_c4.sh --scale=mini, in order.
mtf_synth --model_dir=/work/main/runs/tables/mini/synth_c4/transformer/demo_train --gin_file=models/t5_base.gin --gin_file=tables/mini/demo_train.gin --gin_file=tables/synth_c4/transformer.gin
mtf_synth --model_dir=/work/main/runs/tables/mini/synth_c4/dynamic_conv/demo_train --gin_file=models/t5_base.gin --gin_file=tables/mini/demo_train.gin --gin_file=tables/synth_c4/dynamic_conv.gin
mtf_synth --model_dir=/work/main/runs/tables/mini/synth_c4/lightweight_conv/demo_train --gin_file=models/t5_base.gin --gin_file=tables/mini/demo_train.gin --gin_file=tables/synth_c4/lightweight_conv.gin
mtf_synth --model_dir=/work/main/runs/tables/mini/synth_c4/dense/demo_train --gin_file=models/t5_base.gin --gin_file=tables/mini/demo_train.gin --gin_file=tables/synth_c4/dense.gin
mtf_synth --model_dir=/work/main/runs/tables/mini/synth_c4/dense_vanilla/demo_train --gin_file=models/t5_base.gin --gin_file=tables/mini/demo_train.gin --gin_file=tables/synth_c4/dense_vanilla.gin
mtf_synth --model_dir=/work/main/runs/tables/mini/synth_c4/factorized_random/demo_train --gin_file=models/t5_base.gin --gin_file=tables/mini/demo_train.gin --gin_file=tables/synth_c4/factorized_random.gin
mtf_synth --model_dir=/work/main/runs/tables/mini/synth_c4/random/demo_train --gin_file=models/t5_base.gin --gin_file=tables/mini/demo_train.gin --gin_file=tables/synth_c4/random.gin
mtf_synth --model_dir=/work/main/runs/tables/mini/synth_c4/random_vanilla/demo_train --gin_file=models/t5_base.gin --gin_file=tables/mini/demo_train.gin --gin_file=tables/synth_c4/random_vanilla.gin

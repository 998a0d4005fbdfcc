"""Random feature maps for linear attention, as pure functions of mtf dims.

A feature map phi sends a query or key x (dims: batch dims + {heads} + query
dims + {d_kv}) to non-negative-ish features (same dims with d_kv replaced by
{features}) such that phi(x) . phi(y) estimates a kernel k(x, y). Linear
attention (mtf_synth/attention/linear.py) then never forms the L x L matrix.

Every map here first scales x by d^(-1/4) (`scale_for_kernel`), as the
reference code of "Learning the Transformer Kernel" (Chowdhury et al., TMLR
2022) does, so x . y is scaled by 1/sqrt(d) like softmax attention. Random
draws (`noise`) and learned parameters come in as tensors: the layer
(mtf_synth/layers/kernel_attention.py) owns the variables and decides when
draws are renewed. With m random frequencies omega_1..m:

  rff           omega ~ N(0, I):      [cos(x.omega), sin(x.omega)] / sqrt(m)
                estimates the RBF kernel exp(-|x - y|^2 / 2)
  performer     FAVOR+ (Choromanski et al. 2021): omega orthogonal blocks with
                chi-distributed norms, exp(x.omega - |x|^2 / 2) / sqrt(m)
                estimates the softmax kernel exp(x . y)
  gmm_rks       omega+- = A_h^T eps +- mu_h, eps ~ N(0, I), per head h:
                [cos(x.omega+), sin(x.omega+), cos(x.omega-), sin(x.omega-)]
                / sqrt(2m) estimates exp(-|A_h (x - y)|^2 / 2) cos(mu_h.(x-y))
  gmm_prf       omega = mu_h + exp(s_h / 2) * eps:  exp(x.omega - |x|^2) /
                sqrt(m) estimates exp(mu.(x+y) + |(x+y) exp(s/2)|^2/2 - |x|^2
                - |y|^2); with mu = 0, s = 0 the RBF kernel exp(-|x-y|^2 / 2)
  fastfood_*    omega rows of V = S * H(G * Pi(H(B * x))) / sqrt(d) (Le et al.
                2013): learned S, G, B per head and block, Walsh-Hadamard H,
                random permutation Pi; trigonometric (rks) or positive (prf)
  generative_*  omega = g(eps), g: Linear d->4d, batch norm over the m draws,
                LeakyReLU, Linear 4d->d, tanh; trigonometric or positive

Trigonometric (rks) maps append a constant `smoothing` feature, so the kernel
estimate is k + smoothing^2 and the attention normaliser stays away from 0;
positive (prf, performer) maps are positive by construction, and their log is
capped at MAX_LOG_POSITIVE_FEATURE, so a learned frequency that grows large
cannot overflow float32 (exp(60) products summed over a sequence stay
finite); below the cap the features are exact. For gmm_rks the
1/sqrt(2m) normalisation (m = M/4 draws of eps for M features) makes the
estimate unbiased for the kernel above; each pair of blocks is one cos term.
"""

import math

import mesh_tensorflow as mtf
import tensorflow.compat.v1 as tf

FEATURES = "features"            # output feature dim of every map
RANDOM_FEATURES = "random_features"  # one entry per random frequency omega
NOISE = "noise"                  # input dim of the generative/GMM-RKS noise
FASTFOOD_BLOCKS = "fastfood_blocks"  # independent d x d FastFood blocks
GENERATOR_HIDDEN = "generator_hidden"
LEAKY_RELU_SLOPE = 0.01          # torch's default, used by the reference
# A query feature times a key feature is at most exp(60) ~ 1e26; summed over
# keys and features it stays below float32's 3e38 for sequences < 1e10.
MAX_LOG_POSITIVE_FEATURE = 30.0


def default_num_features(key_size):
  """The power of two nearest d ln d (the paper's default M)."""
  target = key_size * math.log(key_size)
  return 2 ** int(round(math.log2(max(target, 1.0))))


def scale_for_kernel(x, key_dim):
  """x * d^(-1/4), so phi(q) . phi(k) sees q . k / sqrt(d)."""
  return x * (float(key_dim.size) ** -0.25)


def squared_norm(x, key_dim):
  return mtf.reduce_sum(mtf.square(x), reduced_dim=key_dim)


def project(x, frequencies, key_dim):
  """u = x . omega: contracts d_kv, keeps every other dim of both."""
  output_dims = [d for d in x.shape.dims if d != key_dim] + [
      d for d in frequencies.shape.dims
      if d != key_dim and d not in x.shape.dims]
  return mtf.einsum([x, frequencies], output_shape=output_dims)


def _rename_to_features(x, random_dim):
  return mtf.rename_dimension(x, random_dim.name, FEATURES)


def trigonometric_features(projections, random_dim, smoothing):
  """[cos u_1, sin u_1, cos u_2, ...] / sqrt(m) plus a constant feature.

  Args:
    projections: list of Tensors u = x . omega, each with `random_dim`; the
      estimate phi(x) . phi(y) is the mean of cos(omega . (x - y)) over the
      m = len(projections) * random_dim.size frequencies.
    random_dim: the mtf.Dimension of the random frequencies.
    smoothing: a float; 0 leaves the constant feature out.
  Returns:
    a Tensor with `random_dim` replaced by "features".
  """
  num_frequencies = len(projections) * random_dim.size
  blocks = []
  for u in projections:
    blocks += [mtf.cos(u), mtf.sin(u)]
  features = mtf.concat(blocks, random_dim.name) * (num_frequencies ** -0.5)
  if smoothing:
    constant_shape = features.shape.resize_dimension(random_dim.name, 1)
    features = mtf.concat(
        [features, mtf.constant(features.mesh, smoothing, constant_shape,
                                features.dtype)], random_dim.name)
  return _rename_to_features(features, random_dim)


def positive_features(u, x, key_dim, random_dim, norm_coefficient):
  """exp(u - norm_coefficient * |x|^2) / sqrt(m): positive random features.

  The exponent is capped at MAX_LOG_POSITIVE_FEATURE (see the module doc).
  """
  num_frequencies = random_dim.size
  log_features = (u - norm_coefficient * squared_norm(x, key_dim)
                  - 0.5 * math.log(num_frequencies))
  log_features = mtf.minimum(log_features, MAX_LOG_POSITIVE_FEATURE)
  return _rename_to_features(mtf.exp(log_features), random_dim)


def rff_features(x, key_dim, noise, smoothing=1.0):
  """Random Fourier features (Rahimi & Recht 2007) for the RBF kernel.

  Args:
    x: queries or keys, with `key_dim`.
    key_dim: the d_kv mtf.Dimension.
    noise: omega ~ N(0, I), dims {d_kv, random_features}.
    smoothing: the constant feature (0 for none).
  """
  x = scale_for_kernel(x, key_dim)
  random_dim = noise.shape.get_dim_by_name(RANDOM_FEATURES)
  return trigonometric_features([project(x, noise, key_dim)], random_dim,
                                smoothing)


def performer_features(x, key_dim, noise):
  """FAVOR+ positive features for the softmax kernel exp(x . y).

  `noise` holds orthogonal frequencies {d_kv, random_features}
  (`orthogonal_gaussian` draws them).
  """
  x = scale_for_kernel(x, key_dim)
  random_dim = noise.shape.get_dim_by_name(RANDOM_FEATURES)
  return positive_features(project(x, noise, key_dim), x, key_dim,
                           random_dim, 0.5)


def gmm_rks_features(x, key_dim, noise, mean, transform, smoothing=1.0):
  """GMM-RKS: a learned symmetric Gaussian-mixture spectral density per head.

  Args:
    x: queries or keys, with `key_dim` (and "heads").
    key_dim: the d_kv mtf.Dimension.
    noise: eps ~ N(0, I), dims {noise, random_features}, noise size d_kv.
    mean: mu, dims {heads, d_kv}.
    transform: A, dims {heads, noise, d_kv}; omega = A^T eps +- mu.
    smoothing: the constant feature (0 for none).
  """
  x = scale_for_kernel(x, key_dim)
  random_dim = noise.shape.get_dim_by_name(RANDOM_FEATURES)
  centred = project(x, mtf.einsum(
      [transform, noise],
      output_shape=transform.shape - noise.shape.get_dim_by_name(NOISE)
      + [random_dim]), key_dim)
  shift = project(x, mean, key_dim)
  return trigonometric_features([centred + shift, centred - shift],
                                random_dim, smoothing)


def gmm_prf_features(x, key_dim, noise, mean, log_scale):
  """GMM-PRF: omega ~ N(mu_h, diag(exp(s_h))), positive features.

  Args:
    x: queries or keys, with `key_dim` (and "heads").
    key_dim: the d_kv mtf.Dimension.
    noise: eps ~ N(0, I), dims {d_kv, random_features}.
    mean: mu, dims {heads, d_kv}.
    log_scale: s (log variances), dims {heads, d_kv}.
  """
  x = scale_for_kernel(x, key_dim)
  random_dim = noise.shape.get_dim_by_name(RANDOM_FEATURES)
  frequencies = mean + mtf.exp(0.5 * log_scale) * noise
  return positive_features(project(x, frequencies, key_dim), x, key_dim,
                           random_dim, 1.0)


def walsh_hadamard(x, dim):
  """Unnormalised Walsh-Hadamard transform H x along `dim` (size 2^n).

  H = H2 (x) ... (x) H2 (Sylvester): for each binary digit of the index,
  `dim` is viewed as {outer, digit, inner} and the digit is mixed by the
  butterfly H2 = [[1, 1], [1, -1]], (a, b) -> (a + b, a - b): n elementwise
  passes, O(d log d), not O(d^2). (One pass per digit keeps the rank low:
  TF's CPU slice kernel takes at most 8 dims.)
  """
  num_bits = int(round(math.log2(dim.size)))
  if 2 ** num_bits != dim.size:
    raise ValueError("Walsh-Hadamard needs a power-of-two size, got %s" % dim)
  position = x.shape.dims.index(dim)
  digit = mtf.Dimension(dim.name + "_digit", 2)
  for i in range(num_bits):
    outer = mtf.Dimension(dim.name + "_outer", dim.size // 2 ** (i + 1))
    inner = mtf.Dimension(dim.name + "_inner", 2 ** i)
    x = mtf.reshape(x, x.shape.dims[:position] + [outer, digit, inner]
                    + x.shape.dims[position + 1:])
    low = mtf.slice(x, 0, 1, digit.name)
    high = mtf.slice(x, 1, 1, digit.name)
    x = mtf.reshape(mtf.concat([low + high, low - high], digit.name),
                    x.shape.dims[:position] + [dim]
                    + x.shape.dims[position + 3:])
  return x


def fastfood_projections(x, key_dim, permutation, signs, gaussian, scale):
  """V x = S * H(G * Pi(H(B * x))) / sqrt(d), one d x d block per block.

  Args:
    x: scaled queries or keys, with `key_dim` (size a power of two).
    key_dim: the d_kv mtf.Dimension.
    permutation: Pi as indices stored as floats, dims {fastfood_blocks, d_kv}:
      (Pi z)_i = z_{permutation[i]}.
    signs: B, dims {heads, fastfood_blocks, d_kv}.
    gaussian: G, dims {heads, fastfood_blocks, d_kv}.
    scale: S, dims {heads, fastfood_blocks, d_kv}.
  Returns:
    a Tensor with `key_dim` replaced by {fastfood_blocks, d_kv}, which the
    callers merge into "random_features".
  """
  source_dim = mtf.Dimension(key_dim.name + "_source", key_dim.size)
  permutation_matrix = mtf.one_hot(mtf.to_int32(permutation), source_dim,
                                   dtype=x.dtype)
  z = walsh_hadamard(x * signs, key_dim)
  z = mtf.rename_dimension(z, key_dim.name, source_dim.name)
  z = mtf.einsum([z, permutation_matrix],
                 output_shape=z.shape - source_dim + [key_dim])
  z = walsh_hadamard(gaussian * z, key_dim)
  return scale * z * (float(key_dim.size) ** -0.5)


def _merge_blocks(u, key_dim):
  """{fastfood_blocks, d_kv} -> {random_features}."""
  blocks_dim = u.shape.get_dim_by_name(FASTFOOD_BLOCKS)
  random_dim = mtf.Dimension(RANDOM_FEATURES, blocks_dim.size * key_dim.size)
  dims = [d for d in u.shape.dims if d not in (blocks_dim, key_dim)]
  u = mtf.transpose(u, dims + [blocks_dim, key_dim])
  return mtf.reshape(u, dims + [random_dim]), random_dim


def fastfood_rks_features(x, key_dim, permutation, signs, gaussian, scale,
                          smoothing=1.0):
  """FastFood trigonometric features; arguments as `fastfood_projections`."""
  x = scale_for_kernel(x, key_dim)
  u, random_dim = _merge_blocks(
      fastfood_projections(x, key_dim, permutation, signs, gaussian, scale),
      key_dim)
  return trigonometric_features([u], random_dim, smoothing)


def fastfood_prf_features(x, key_dim, permutation, signs, gaussian, scale):
  """FastFood positive features; arguments as `fastfood_projections`."""
  x = scale_for_kernel(x, key_dim)
  u, random_dim = _merge_blocks(
      fastfood_projections(x, key_dim, permutation, signs, gaussian, scale),
      key_dim)
  return positive_features(u, x, key_dim, random_dim, 1.0)


def generator_frequencies(noise, key_dim, hidden_weights, hidden_bias,
                          norm_scale, norm_bias, output_weights, output_bias,
                          epsilon=1e-5):
  """omega = tanh(W2 LeakyReLU(BN(W1 eps + b1)) + b2), one omega per draw.

  Batch norm normalises over the m draws (the generator's batch); it always
  uses these statistics, so fixed draws give fixed frequencies.

  Args:
    noise: eps ~ N(0, I), dims {noise, random_features}.
    key_dim: the d_kv mtf.Dimension (the output of the generator).
    hidden_weights: W1, dims {heads, noise, generator_hidden}.
    hidden_bias: b1, dims {heads, generator_hidden}.
    norm_scale: batch norm gamma, dims {heads, generator_hidden}.
    norm_bias: batch norm beta, dims {heads, generator_hidden}.
    output_weights: W2, dims {heads, generator_hidden, d_kv}.
    output_bias: b2, dims {heads, d_kv}.
    epsilon: batch norm variance floor (torch's default).
  Returns:
    omega with dims {heads, d_kv, random_features}.
  """
  random_dim = noise.shape.get_dim_by_name(RANDOM_FEATURES)
  noise_dim = noise.shape.get_dim_by_name(NOISE)
  hidden = mtf.einsum([noise, hidden_weights],
                      output_shape=hidden_weights.shape - noise_dim
                      + [random_dim]) + hidden_bias
  mean = mtf.reduce_mean(hidden, reduced_dim=random_dim)
  variance = mtf.reduce_mean(mtf.square(hidden - mean), reduced_dim=random_dim)
  hidden = (hidden - mean) * mtf.rsqrt(variance + epsilon) * norm_scale
  hidden = mtf.leaky_relu(hidden + norm_bias, alpha=LEAKY_RELU_SLOPE)
  hidden_dim = hidden_weights.shape.get_dim_by_name(GENERATOR_HIDDEN)
  output = mtf.einsum([hidden, output_weights],
                      output_shape=hidden.shape - hidden_dim + [key_dim])
  return mtf.tanh(output + output_bias)


def generative_rks_features(x, key_dim, noise, smoothing=1.0, **generator):
  """Generative-RKS: omega = `generator_frequencies(noise, **generator)`."""
  x = scale_for_kernel(x, key_dim)
  random_dim = noise.shape.get_dim_by_name(RANDOM_FEATURES)
  frequencies = generator_frequencies(noise, key_dim, **generator)
  return trigonometric_features([project(x, frequencies, key_dim)],
                                random_dim, smoothing)


def generative_prf_features(x, key_dim, noise, **generator):
  """Generative-PRF: positive features with generated frequencies."""
  x = scale_for_kernel(x, key_dim)
  random_dim = noise.shape.get_dim_by_name(RANDOM_FEATURES)
  frequencies = generator_frequencies(noise, key_dim, **generator)
  return positive_features(project(x, frequencies, key_dim), x, key_dim,
                           random_dim, 1.0)


# Samplers of the random draws, as TF ops on full (unsliced) shapes: the
# layer uses them as initialisers of fixed draws and, when features are
# redrawn, imports a fresh sample every step.


def gaussian(shape, dtype=tf.float32):
  return tf.random.normal(shape, dtype=dtype)


def orthogonal_gaussian(shape, dtype=tf.float32):
  """[d, m] frequencies: orthogonal d x d blocks, rows of chi_d norms.

  Marginally each column is N(0, I_d); columns within a block are orthogonal,
  which lowers the variance of the kernel estimate (Performer, Theorem 2).
  """
  rows, columns = shape
  num_blocks = -(-columns // rows)
  blocks = tf.random.normal([num_blocks, rows, rows], dtype=dtype)
  orthonormal, triangular = tf.linalg.qr(blocks)
  # Householder QR fixes the signs of diag(R), which biases Q's columns;
  # flipping them by sign(diag(R)) makes Q Haar-distributed.
  orthonormal *= tf.sign(tf.linalg.diag_part(triangular))[:, None, :]
  norms = tf.norm(tf.random.normal([num_blocks, rows, rows], dtype=dtype),
                  axis=-1)
  scaled = orthonormal * norms[:, None, :]
  return tf.reshape(tf.transpose(scaled, [1, 0, 2]),
                    [rows, num_blocks * rows])[:, :columns]


def random_permutations(shape, dtype=tf.float32):
  """[blocks, d]: one random permutation of range(d) per block, as floats."""
  return tf.cast(tf.argsort(tf.random.uniform(shape), axis=-1), dtype)


def rademacher(shape, dtype=tf.float32):
  return tf.sign(tf.random.uniform(shape, -1.0, 1.0, dtype=dtype))


def chi_over_sqrt_d(shape, dtype=tf.float32):
  """chi_d / sqrt(d) ~ chi_d / |G|: the FastFood row-norm correction S."""
  d = shape[-1]
  samples = tf.random.normal(list(shape) + [d], dtype=dtype)
  return tf.norm(samples, axis=-1) / math.sqrt(d)

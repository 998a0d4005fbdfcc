"""Feature maps against numpy references, positivity and Monte Carlo limits."""

import math

import mesh_tensorflow as mtf
import mtf_harness
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from mtf_synth.attention import feature_maps as fm
from mtf_synth.layers.kernel_attention import KERNELS

D = 8          # d_kv
HEADS = 2
N = 5          # vectors per head


def _dims(names, array):
  return [mtf.Dimension(name, size) for name, size in zip(names, array.shape)]


def run_feature_map(features_fn, x, tensors, **kwargs):
  """features_fn(x, d_kv, **tensors, **kwargs) in mtf -> numpy [n, h, F].

  x: [n, heads, d_kv]; tensors: {name: (array, [dim names])}.
  """
  def build(mesh):
    def imported(array, names):
      return mtf.import_tf_tensor(mesh, tf.constant(array, tf.float32),
                                  _dims(names, array))
    x_mtf = imported(x, ["n", "heads", "d_kv"])
    inputs = {k: imported(a, names) for k, (a, names) in tensors.items()}
    out = features_fn(x_mtf, x_mtf.shape.dims[-1], **inputs, **kwargs)
    order = x_mtf.shape.dims[:2] + [out.shape.get_dim_by_name(fm.FEATURES)]
    return {"phi": mtf.transpose(out, order)}
  return mtf_harness.run_mtf(build)["phi"]


def scaled(x):
  return x * D ** -0.25


def np_trigonometric(projections, smoothing):
  m = sum(u.shape[-1] for u in projections)
  blocks = [f(u) for u in projections for f in (np.cos, np.sin)]
  features = np.concatenate(blocks, -1) / math.sqrt(m)
  if smoothing:
    pad = np.full(features.shape[:-1] + (1,), smoothing)
    features = np.concatenate([features, pad], -1)
  return features


def np_positive(u, x, coefficient):
  sq = np.sum(x ** 2, -1, keepdims=True)
  log_features = u - coefficient * sq - 0.5 * math.log(u.shape[-1])
  return np.exp(np.minimum(log_features, fm.MAX_LOG_POSITIVE_FEATURE))


def np_sylvester(d):
  h = np.ones((1, 1))
  while h.shape[0] < d:
    h = np.block([[h, h], [h, -h]])
  return h


def np_fastfood(x, permutation, signs, gaussian, scale):
  """x [n, h, d]; perm [b, d]; signs/gaussian/scale [h, b, d] -> [n, h, b*d]."""
  hadamard = np_sylvester(x.shape[-1])
  z = x[:, :, None, :] * signs[None]                 # [n, h, b, d]
  z = z @ hadamard.T
  z = np.take_along_axis(z, permutation.astype(int)[None, None], axis=-1)
  z = (gaussian[None] * z) @ hadamard.T
  z = scale[None] * z / math.sqrt(x.shape[-1])
  return z.reshape(z.shape[0], z.shape[1], -1)


def np_generator(eps, g):
  """eps [noise, m] -> omega [h, m, d]."""
  hidden = np.einsum("nm,hnk->hmk", eps, g["hidden_weights"])
  hidden += g["hidden_bias"][:, None]
  mean = hidden.mean(1, keepdims=True)
  var = ((hidden - mean) ** 2).mean(1, keepdims=True)
  hidden = (hidden - mean) / np.sqrt(var + 1e-5) * g["norm_scale"][:, None]
  hidden += g["norm_bias"][:, None]
  hidden = np.where(hidden > 0, hidden, 0.01 * hidden)
  out = np.einsum("hmk,hkd->hmd", hidden, g["output_weights"])
  return np.tanh(out + g["output_bias"][:, None])


@pytest.fixture(name="rng")
def fixture_rng():
  return np.random.RandomState(0)


def generator_params(rng):
  hidden = 4 * D
  return {
      "hidden_weights": (rng.randn(HEADS, D, hidden) * 0.3,
                         ["heads", fm.NOISE, fm.GENERATOR_HIDDEN]),
      "hidden_bias": (rng.randn(HEADS, hidden) * 0.1,
                      ["heads", fm.GENERATOR_HIDDEN]),
      "norm_scale": (1 + rng.rand(HEADS, hidden),
                     ["heads", fm.GENERATOR_HIDDEN]),
      "norm_bias": (rng.randn(HEADS, hidden) * 0.1,
                    ["heads", fm.GENERATOR_HIDDEN]),
      "output_weights": (rng.randn(HEADS, hidden, D) * 0.3,
                         ["heads", fm.GENERATOR_HIDDEN, "d_kv"]),
      "output_bias": (rng.randn(HEADS, D) * 0.1, ["heads", "d_kv"]),
  }


def fastfood_tensors(rng, blocks):
  d = D
  return {
      "permutation": (np.stack([rng.permutation(d) for _ in range(blocks)]
                               ).astype(np.float32),
                      [fm.FASTFOOD_BLOCKS, "d_kv"]),
      "signs": (rng.choice([-1.0, 1.0], (HEADS, blocks, d)),
                ["heads", fm.FASTFOOD_BLOCKS, "d_kv"]),
      "gaussian": (rng.randn(HEADS, blocks, d),
                   ["heads", fm.FASTFOOD_BLOCKS, "d_kv"]),
      "scale": (1 + 0.2 * rng.randn(HEADS, blocks, d),
                ["heads", fm.FASTFOOD_BLOCKS, "d_kv"]),
  }


def np_feature_map(kernel, x, arrays, smoothing=1.0):
  """The paper's phi(x) in numpy, for x [n, heads, d_kv] already scaled by
  d^-1/4; `arrays` holds the kernel's draws and parameters by their names
  in KERNELS, in the layouts run_feature_map's callers give them."""
  if kernel == "rff":
    return np_trigonometric([x @ arrays["noise"]], smoothing)
  if kernel == "performer":
    return np_positive(x @ arrays["noise"], x, 0.5)
  if kernel == "gmm_rks":
    omega = np.einsum("hnd,nm->hdm", arrays["transform"], arrays["noise"])
    u = np.einsum("khd,hdm->khm", x, omega)
    shift = np.einsum("khd,hd->kh", x, arrays["mean"])[..., None]
    return np_trigonometric([u + shift, u - shift], smoothing)
  if kernel == "gmm_prf":
    omega = (arrays["mean"][..., None]
             + np.exp(arrays["log_scale"] / 2)[..., None] * arrays["noise"])
    return np_positive(np.einsum("khd,hdm->khm", x, omega), x, 1.0)
  if kernel.startswith("fastfood"):
    u = np_fastfood(x, arrays["permutation"], arrays["signs"],
                    arrays["gaussian"], arrays["scale"])
  else:  # generative_*
    u = np.einsum("khd,hmd->khm", x, np_generator(arrays["noise"], arrays))
  if KERNELS[kernel].trigonometric:
    return np_trigonometric([u], smoothing)
  return np_positive(u, x, 1.0)


def reference_case(kernel, rng, m=12):
  """(features_fn, tensors, kwargs, numpy reference fn of x)."""
  mean = (rng.randn(HEADS, D) * 0.3, ["heads", "d_kv"])
  if kernel in ("rff", "performer"):
    tensors = {"noise": (rng.randn(D, m), ["d_kv", fm.RANDOM_FEATURES])}
  elif kernel == "gmm_rks":
    tensors = {"noise": (rng.randn(D, m), [fm.NOISE, fm.RANDOM_FEATURES]),
               "mean": mean,
               "transform": (rng.randn(HEADS, D, D) * 0.5,
                             ["heads", fm.NOISE, "d_kv"])}
  elif kernel == "gmm_prf":
    tensors = {"noise": (rng.randn(D, m), ["d_kv", fm.RANDOM_FEATURES]),
               "mean": mean,
               "log_scale": (rng.randn(HEADS, D) * 0.3, ["heads", "d_kv"])}
  elif kernel.startswith("fastfood"):
    tensors = fastfood_tensors(rng, 2)
  else:  # generative_*
    tensors = dict(generator_params(rng),
                   noise=(rng.randn(D, m), [fm.NOISE, fm.RANDOM_FEATURES]))
  smoothing = 0.5 if kernel == "rff" else 1.0
  kwargs = {"smoothing": smoothing} if KERNELS[kernel].trigonometric else {}
  arrays = {k: a for k, (a, _) in tensors.items()}
  features_fn = getattr(fm, kernel + "_features")
  return (features_fn, tensors, kwargs,
          lambda x: np_feature_map(kernel, scaled(x), arrays, smoothing))


ALL_KERNELS = sorted(KERNELS)
POSITIVE_KERNELS = [k for k in ALL_KERNELS if not KERNELS[k].trigonometric]
# A learned generator's spectrum has no closed-form kernel to converge to.
CLOSED_FORM_KERNELS = [k for k in ALL_KERNELS
                       if not k.startswith("generative_")]


@pytest.mark.parametrize("kernel", ALL_KERNELS)
def test_feature_map_matches_numpy(kernel, rng):
  features_fn, tensors, kwargs, reference = reference_case(kernel, rng)
  x = rng.randn(N, HEADS, D)
  got = run_feature_map(features_fn, x, tensors, **kwargs)
  np.testing.assert_allclose(got, reference(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel", POSITIVE_KERNELS)
def test_positive_features_are_positive(kernel, rng):
  features_fn, tensors, kwargs, _ = reference_case(kernel, rng)
  x = 3.0 * rng.randn(N, HEADS, D)  # large inputs: the exp's small end
  assert (run_feature_map(features_fn, x, tensors, **kwargs) > 0).all()


# Frequencies without a bound (generative's pass through tanh): grown 1000x,
# as a diverging learned mean or FastFood scale would, exp(x . omega) would
# overflow float32.
@pytest.mark.parametrize("kernel,grown", [("performer", "noise"),
                                          ("gmm_prf", "mean"),
                                          ("fastfood_prf", "scale")])
def test_positive_features_of_huge_frequencies_are_capped(kernel, grown, rng):
  features_fn, tensors, kwargs, reference = reference_case(kernel, rng)
  array, names = tensors[grown]
  tensors[grown] = (1000.0 * array, names)
  got = run_feature_map(features_fn, rng.randn(N, HEADS, D), tensors,
                        **kwargs)
  assert np.isfinite(got).all()
  cap = math.exp(fm.MAX_LOG_POSITIVE_FEATURE)
  assert got.max() == pytest.approx(cap, rel=1e-5)  # the cap was reached


def test_walsh_hadamard_is_sylvester(rng):
  x = rng.randn(3, 16)
  def build(mesh):
    dims = [mtf.Dimension("n", 3), mtf.Dimension("d_kv", 16)]
    x_mtf = mtf.import_tf_tensor(mesh, tf.constant(x, tf.float32), dims)
    return {"hx": fm.walsh_hadamard(x_mtf, dims[1])}
  got = mtf_harness.run_mtf(build)["hx"]
  np.testing.assert_allclose(got, x @ np_sylvester(16).T, rtol=1e-5,
                             atol=1e-5)


def test_default_num_features_is_nearest_power_of_two():
  assert fm.default_num_features(64) == 256    # 64 ln 64 = 266
  assert fm.default_num_features(32) == 128    # 111
  assert fm.default_num_features(128) == 512   # 621 (512 nearer than 1024)


def test_samplers():
  with tf.Graph().as_default(), tf.Session() as sess:
    omega, perm, chi = sess.run([fm.orthogonal_gaussian([D, 3 * D]),
                                 fm.random_permutations([4, D]),
                                 fm.chi_over_sqrt_d([4, D])])
  for block in range(3):
    columns = omega[:, block * D:(block + 1) * D]
    gram = columns.T @ columns
    np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0, atol=1e-4)
  for row in perm:
    assert sorted(row.astype(int)) == list(range(D))
  assert chi.shape == (4, D) and (chi > 0).all()


# Monte Carlo: phi(x) . phi(y) -> k(x, y) as the number of features grows.


def _pairs(rng):
  x = 0.6 * rng.randn(N, HEADS, D)
  y = 0.6 * rng.randn(N, HEADS, D)
  return x, y


def rbf(x, y):
  return np.exp(-0.5 * np.sum((scaled(x) - scaled(y)) ** 2, -1))


def estimate(features_fn, x, y, tensors, **kwargs):
  both = np.concatenate([x, y], 0)
  phi = run_feature_map(features_fn, both, tensors, **kwargs)
  return np.sum(phi[:N] * phi[N:], -1)


def monte_carlo_case(kernel, rng, m):
  """(features_fn, tensors, kwargs, exact kernel fn) with m frequencies."""
  zeros = np.zeros((HEADS, D))
  if kernel == "rff":
    return (fm.rff_features,
            {"noise": (rng.randn(D, m), ["d_kv", fm.RANDOM_FEATURES])},
            {"smoothing": 0.0}, rbf)
  if kernel == "performer":
    with tf.Graph().as_default(), tf.Session() as sess:
      tf.set_random_seed(m)
      omega = sess.run(fm.orthogonal_gaussian([D, m]))
    return (fm.performer_features,
            {"noise": (omega, ["d_kv", fm.RANDOM_FEATURES])}, {},
            lambda x, y: np.exp(np.sum(scaled(x) * scaled(y), -1)))
  if kernel == "gmm_rks":
    mean = 0.5 * rng.randn(HEADS, D)
    transform = np.eye(D)[None] * np.array([0.5, 1.5])[:, None, None]
    def exact(x, y):
      delta = scaled(x) - scaled(y)
      a_delta = np.einsum("hnd,khd->khn", transform, delta)
      return (np.exp(-0.5 * np.sum(a_delta ** 2, -1))
              * np.cos(np.einsum("hd,khd->kh", mean, delta)))
    return (fm.gmm_rks_features,
            {"noise": (rng.randn(D, m), [fm.NOISE, fm.RANDOM_FEATURES]),
             "mean": (mean, ["heads", "d_kv"]),
             "transform": (transform, ["heads", fm.NOISE, "d_kv"])},
            {"smoothing": 0.0}, exact)
  if kernel == "gmm_prf":
    return (fm.gmm_prf_features,
            {"noise": (rng.randn(D, m), ["d_kv", fm.RANDOM_FEATURES]),
             "mean": (zeros, ["heads", "d_kv"]),
             "log_scale": (zeros, ["heads", "d_kv"])}, {}, rbf)
  # FastFood with S = chi_d / |G| approximates the RBF kernel (Le et al.).
  blocks = m // D
  tensors = fastfood_tensors(rng, blocks)
  tensors["signs"] = (rng.choice([-1.0, 1.0], (HEADS, blocks, D)),
                      tensors["signs"][1])
  gaussian = rng.randn(HEADS, blocks, D)
  chi = np.linalg.norm(rng.randn(HEADS, blocks, D, D), axis=-1)
  scale = chi / np.linalg.norm(gaussian, axis=-1, keepdims=True)
  tensors["gaussian"] = (gaussian, tensors["gaussian"][1])
  tensors["scale"] = (scale, tensors["scale"][1])
  if kernel == "fastfood_rks":
    return fm.fastfood_rks_features, tensors, {"smoothing": 0.0}, rbf
  return fm.fastfood_prf_features, tensors, {}, rbf


@pytest.mark.parametrize("kernel", CLOSED_FORM_KERNELS)
def test_monte_carlo_converges_to_exact_kernel(kernel):
  rng = np.random.RandomState(1)
  x, y = _pairs(rng)
  errors = []
  for m in (16, 256, 4096):
    features_fn, tensors, kwargs, exact = monte_carlo_case(kernel, rng, m)
    errors.append(np.abs(estimate(features_fn, x, y, tensors, **kwargs)
                         - exact(x, y)).mean())
  assert errors[-1] < errors[0] / 4, errors
  # The softmax kernel exp(x.y) has the largest values and estimator variance.
  assert errors[-1] < (0.08 if kernel == "performer" else 0.03), errors

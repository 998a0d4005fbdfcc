"""Which checkpoints a model_dir holds, and which of them can be restored.

A checkpoint is used only once every variable of it reads back through TF's
checkpoint reader (which checks each tensor's size and checksum): a
truncated `.data` shard, an empty or missing `.index`, a missing shard is
found here and named, not in a restore's traceback. The `checkpoint` state
file is a hint: the steps are the files that exist, and the latest is the
newest intact one (a damaged newer one gets a warning naming both steps).

Readers (eval, infer, export) hold the checkpoint they read: `pinned` links
its files into a folder of the reader's own, so a trainer deleting old
checkpoints (keep_checkpoint_max) cannot take it away mid-read.
"""

import atexit
import fcntl
import os
import re
import shutil
import tempfile
import uuid

import tensorflow.compat.v1 as tf

from mtf_synth import errors

_PREFIX = "model.ckpt-%d"
_STEP_OF_INDEX = re.compile(r"model\.ckpt-(\d+)\.index$")
_STEP_OF_PREFIX = re.compile(r"model\.ckpt-(\d+)$")
_DATA_SHARD = re.compile(r"\.data-\d+-of-\d+")
# What TF's reader raises for a file it cannot read (OUT_OF_RANGE, e.g. a
# truncated shard, arrives as IndexError).
_READ_ERRORS = (tf.errors.OpError, IndexError)
_PIN_FOLDER = ".mtf_synth_reading_%s"
_PIN_LOCK = "held"
# A reader re-picks the newest intact checkpoint when a trainer deletes the
# one it picked before it is linked: that takes a trainer deleting one
# checkpoint per attempt.
_PIN_ATTEMPTS = 5

_checked = {}  # a checkpoint's files' _signature: its problem (or None)
_warned = set()
_pins = []  # (folder, open lock file) of this process


def path(model_dir, step):
  return os.path.join(model_dir, _PREFIX % step)


def step_of(checkpoint_path):
  return int(checkpoint_path.rsplit("-", 1)[1])


def steps(model_dir):
  """The steps of every checkpoint with an `.index` file in model_dir.

  Globbed rather than read from the `checkpoint` file, which drops the old
  checkpoints that keep_checkpoint_every_n_hours keeps on disk.
  """
  return sorted(int(_STEP_OF_INDEX.search(name).group(1)) for name in
                tf.io.gfile.glob(os.path.join(model_dir, "model.ckpt-*.index"))
                if _STEP_OF_INDEX.search(name))


def _state(model_dir):
  """The `checkpoint` state file's contents, or None (missing, unreadable)."""
  try:
    return tf.train.get_checkpoint_state(model_dir)
  except (tf.errors.OpError, ValueError) as e:
    _warn_once("state", "the `checkpoint` state file of %s cannot be read "
               "(%s): checkpoints are taken from the files that exist" %
               (model_dir, _one_line(e)))
    return None


def _state_steps(model_dir):
  """The steps the state file names (those in model_dir)."""
  state = _state(model_dir)
  names = list(state.all_model_checkpoint_paths) + [
      state.model_checkpoint_path] if state else []
  found = set()
  for name in names:
    match = _STEP_OF_PREFIX.search(name)
    if match:
      found.add(int(match.group(1)))
  return found


def _one_line(error):
  return " ".join(str(getattr(error, "message", error)).split())


def _signature(prefix):
  """Its files' names, inodes, sizes and times: equal for hard links."""
  signature = []
  for name in sorted(tf.io.gfile.glob(prefix + ".index") +
                     tf.io.gfile.glob(prefix + ".data-*")):
    try:
      stat = tf.io.gfile.stat(name)
      inode = os.stat(name).st_ino if os.path.exists(name) else None
    except (tf.errors.NotFoundError, FileNotFoundError):
      continue  # deleted meanwhile: the check below reports it
    signature.append((os.path.basename(name), inode, stat.length,
                      stat.mtime_nsec))
  return tuple(signature)


def problem(prefix):
  """What keeps checkpoint `prefix` from being restored, naming the file;
  None when every variable reads back. Remembered while its files stay
  the same (a hard link of them included)."""
  signature = _signature(prefix)
  if signature and signature in _checked:
    return _checked[signature]
  found = _problem(prefix)
  if signature:
    _checked[signature] = found
  return found


def _problem(prefix):
  index = prefix + ".index"
  if not tf.io.gfile.exists(index):
    return "%s is missing" % index
  if tf.io.gfile.stat(index).length == 0:
    return "%s is empty (0 bytes)" % index
  try:
    reader = tf.train.load_checkpoint(prefix)
  except _READ_ERRORS as e:
    return "%s cannot be read (%s)" % (index, _one_line(e))
  for name in sorted(reader.get_variable_to_shape_map()):
    try:
      reader.get_tensor(name)
    except _READ_ERRORS as e:
      shard = _shard_holding(prefix, name)
      if shard and not tf.io.gfile.exists(shard):
        return "%s is missing" % shard
      return "%s is truncated or corrupt: variable %s cannot be read (%s)" % (
          "%s (%d bytes)" % (shard, tf.io.gfile.stat(shard).length) if shard
          else prefix + ".data-*", name, _one_line(e))
  return None


def _shard_holding(prefix, name):
  """The `.data` file of checkpoint prefix holding variable `name`.

  TF's reader opens a shard when a variable in it is read: over a copy of
  the index alone, reading the variable fails naming its shard.
  """
  with tempfile.TemporaryDirectory() as scratch:
    copy = os.path.join(scratch, os.path.basename(prefix))
    tf.io.gfile.copy(prefix + ".index", copy + ".index")
    try:
      tf.train.load_checkpoint(copy).get_tensor(name)
    except _READ_ERRORS as e:
      match = _DATA_SHARD.search(str(e))
      if match:
        return prefix + match.group(0)
  return None


def _warn_once(key, message):
  if key not in _warned:
    _warned.add(key)
    tf.logging.warning(message)


def check_intact(model_dir, step, knob):
  """The path of checkpoint `step`, asked for explicitly with `knob`.

  Raises:
    DamagedCheckpointError: it cannot be restored (names the file).
  """
  prefix = path(model_dir, step)
  found = problem(prefix)
  if found:
    intact = [s for s in steps(model_dir) if problem(path(model_dir, s)) is None]
    raise errors.DamagedCheckpointError(
        "checkpoint step %d in %s is damaged: %s: ask for an intact step with"
        " %s (%s), or restore the files from a backup" % (
            step, model_dir, found, knob,
            "intact: %s" % ", ".join(map(str, intact)) if intact
            else "none is intact"))
  return prefix


def newest_intact(model_dir):
  """The path of model_dir's newest checkpoint that can be restored, or None
  when there is no checkpoint.

  Steps are those of the `.index` files that exist and of the state file
  (`.data` files alone are a save in progress, or one cut short); newer
  damaged ones are skipped with a warning naming both steps.

  Raises:
    DamagedCheckpointError: there are checkpoints, but none is intact.
  """
  candidates = set(steps(model_dir)) | _state_steps(model_dir)
  damaged = []
  for step in sorted(candidates, reverse=True):
    found = problem(path(model_dir, step))
    if found is None:
      for bad, reason in damaged:
        _warn_once((model_dir, bad, reason),
                   "checkpoint step %d in %s is damaged (%s): using step %d, "
                   "the newest intact checkpoint" % (bad, model_dir, reason,
                                                     step))
      return path(model_dir, step)
    damaged.append((step, found))
  if damaged:
    raise errors.DamagedCheckpointError(
        "no checkpoint in %s can be restored: %s: restore the files from a "
        "backup, or train afresh in another --model_dir" % (
            model_dir, "; ".join("step %d: %s" % d for d in damaged)))
  return None


def latest_step(model_dir):
  """The step of model_dir's newest intact checkpoint, or None."""
  last = newest_intact(model_dir)
  return step_of(last) if last else None


def for_resume(model_dir):
  """The newest intact checkpoint, for the trainer (which holds the lock).

  TF's session manager restores what the `checkpoint` state file names;
  where it names another checkpoint (a damaged or deleted one) or is
  missing, it is rewritten to name this one. Returns None to start afresh.
  """
  last = newest_intact(model_dir)
  if last is None:
    return None
  state = _state(model_dir)
  named = state and os.path.basename(state.model_checkpoint_path)
  if named != os.path.basename(last):
    older = [p for p in (state.all_model_checkpoint_paths if state else [])
             if _STEP_OF_PREFIX.search(p)
             and step_of(p) < step_of(last)
             and tf.io.gfile.exists(p + ".index")]
    tf.train.update_checkpoint_state(model_dir, last,
                                     all_model_checkpoint_paths=older + [last])
    tf.logging.warning("the `checkpoint` state file of %s named %s: it now "
                       "names %s, the newest intact checkpoint", model_dir,
                       named or "(none)", os.path.basename(last))
  return last


def pinned(model_dir, prefix=None):
  """A path to restore checkpoint `prefix` (default: the newest intact one)
  from while a trainer may delete it; None when there is no checkpoint.

  Hard links of its files in a folder of this process in model_dir (removed
  at exit; a folder whose process is gone is removed by the next reader).
  When `prefix` is None and the trainer deletes the newest checkpoint before
  it is linked, the newest is picked again. Where files cannot be linked
  (another filesystem, e.g. gs://), the checkpoint itself.
  """
  for _ in range(_PIN_ATTEMPTS):
    chosen = prefix or newest_intact(model_dir)
    if chosen is None:
      return None
    try:
      return _link(model_dir, chosen)
    except FileNotFoundError:
      if prefix:
        raise errors.NoCheckpointError(
            "checkpoint %s was deleted (by a trainer's keep_checkpoint_max?) "
            "before it could be read: ask for a newer step, or raise "
            "utils.run.keep_checkpoint_max" % prefix) from None
    except OSError as e:
      tf.logging.info("checkpoint %s read in place (%s): a trainer deleting "
                      "it meanwhile fails this run", chosen, e)
      return chosen
  raise errors.NoCheckpointError(
      "the newest checkpoint of %s was deleted before it could be read, %d "
      "times: raise the trainer's utils.run.keep_checkpoint_max, or read a "
      "copy of the model_dir" % (model_dir, _PIN_ATTEMPTS))


def held_checkpoint_iterator(get_checkpoint_iterator):
  """mesh TF's get_checkpoint_iterator with -1 meaning the newest intact
  checkpoint (mesh TF's: the one the state file names, which may be damaged
  or deleted), each checkpoint of a step or list of steps `pinned`, and
  those of "all" or None (every one, or each as it is written) held one at
  a time (`_held_as_they_come`)."""
  def checkpoint_iterator(checkpoint_step, model_dir, *args, **kwargs):
    if checkpoint_step == -1:
      return [pinned(model_dir)]
    found = get_checkpoint_iterator(checkpoint_step, model_dir, *args,
                                    **kwargs)
    if isinstance(found, list):
      return [pinned(model_dir, prefix) for prefix in found]
    return _held_as_they_come(found, model_dir)

  return checkpoint_iterator


def _held_as_they_come(prefixes, model_dir):
  """Each checkpoint of `prefixes` held while it is read, and let go when
  the next is taken (a continuous eval would otherwise keep every deleted
  checkpoint's files alive); one a trainer deleted before it could be held
  is skipped with a warning."""
  held = None
  for prefix in prefixes:
    _let_go(held)
    try:
      held = pinned(model_dir, prefix)
    except errors.NoCheckpointError:
      held = None
      tf.logging.warning("checkpoint %s was deleted (by a trainer's "
                         "keep_checkpoint_max?) before it could be read: "
                         "skipped", prefix)
      continue
    yield held
  _let_go(held)


def _let_go(held):
  """Removes the links of a held checkpoint (not a checkpoint read in
  place)."""
  if held and unpinned(held) != held:
    for name in tf.io.gfile.glob(held + ".*"):
      os.remove(name)


def _link(model_dir, prefix):
  folder = _pin_folder(model_dir)
  names = tf.io.gfile.glob(prefix + ".index") + tf.io.gfile.glob(
      prefix + ".data-*")
  linked = []
  try:
    for name in names:
      linked.append(os.path.join(folder, os.path.basename(name)))
      os.link(name, linked[-1])
    held = os.path.join(folder, os.path.basename(prefix))
    if not names or problem(held):  # deleted or replaced meanwhile
      raise FileNotFoundError(prefix)
  except OSError:
    for name in linked:
      if os.path.exists(name):
        os.remove(name)
    raise
  tf.logging.info("reading checkpoint %s (held as %s while it is read)",
                  prefix, held)
  return held


def _pin_folder(model_dir):
  """This process's folder of held checkpoints in model_dir (made once)."""
  for folder, _ in _pins:
    if os.path.dirname(folder) == os.path.abspath(model_dir):
      return folder
  _remove_abandoned_pins(model_dir)
  folder = os.path.join(os.path.abspath(model_dir),
                        _PIN_FOLDER % uuid.uuid4().hex)
  os.mkdir(folder)
  lock = open(os.path.join(folder, _PIN_LOCK), "w")  # pylint: disable=consider-using-with
  fcntl.flock(lock, fcntl.LOCK_EX)
  if not _pins:
    atexit.register(release_pins)
  _pins.append((folder, lock))
  return folder


def _remove_abandoned_pins(model_dir):
  """Folders of readers that ended without removing theirs (kill -9)."""
  for folder in tf.io.gfile.glob(os.path.join(model_dir, _PIN_FOLDER % "*")):
    try:
      with open(os.path.join(folder, _PIN_LOCK)) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        shutil.rmtree(folder)
    except OSError:
      continue  # held by a running reader (or already gone)


def release_pins():
  """Removes this process's folders of held checkpoints."""
  while _pins:
    folder, lock = _pins.pop()
    shutil.rmtree(folder, ignore_errors=True)
    lock.close()


def unpinned(checkpoint_path):
  """The checkpoint in model_dir that a held path stands for (for messages)."""
  folder = os.path.dirname(checkpoint_path)
  if re.fullmatch(_PIN_FOLDER % "[0-9a-f]+", os.path.basename(folder)):
    return os.path.join(os.path.dirname(folder),
                        os.path.basename(checkpoint_path))
  return checkpoint_path

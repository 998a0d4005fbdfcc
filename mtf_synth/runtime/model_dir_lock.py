"""One trainer per model_dir: a lock file naming its holder.

Training holds `MODEL_DIR/mtf_synth.lock` for the life of the process. On a
local or NFS path the lock is the kernel's (`flock`, which Linux maps to NFS
byte-range locks), so it goes away with its process, even after `kill -9`;
the file's text (host, pid, start time) names the holder for the error
message, and text left by a holder that died is a stale lock, taken over with
a warning. The file is emptied, never deleted, on release: deleting it would
let a waiting opener lock the orphaned inode while a newcomer locks a new one.
Object stores (gs://, s3://) cannot lock: training there warns that nothing
stops a second trainer. Readers (eval, infer, export) take no lock.
"""

import atexit
import datetime
import fcntl
import json
import os
import socket

import tensorflow.compat.v1 as tf

from mtf_synth import errors

LOCK_FILENAME = "mtf_synth.lock"
_held = {}  # model_dir (absolute) -> open lock file of this process


def _describe(holder):
  return "host %s, pid %s, started %s" % (
      holder.get("host"), holder.get("pid"), holder.get("start_time"))


def _read_holder(lock_file):
  lock_file.seek(0)
  text = lock_file.read().strip()
  if not text:
    return None
  try:
    return json.loads(text)
  except ValueError:
    return {"host": "?", "pid": "?", "start_time": "? (unreadable: %r)" %
            text[:80]}


def acquire(model_dir):
  """Takes model_dir's lock for this process (a no-op if it already has it).

  Raises:
    ModelDirLockedError: another live process holds it.
  """
  if "://" in model_dir:
    tf.logging.warning(
        "%s is on an object store, which cannot lock: nothing stops a second "
        "trainer from writing to it; make sure only one runs", model_dir)
    return
  key = os.path.abspath(model_dir)
  if key in _held:
    return
  os.makedirs(key, exist_ok=True)
  path = os.path.join(key, LOCK_FILENAME)
  lock_file = open(path, "a+")  # pylint: disable=consider-using-with
  try:
    fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    holder = _read_holder(lock_file) or {}
    lock_file.close()
    raise errors.ModelDirLockedError(
        "model_dir %s is being trained by another process (%s, lock %s): "
        "wait for it to finish or stop it, or train in another --model_dir" %
        (model_dir, _describe(holder), path)) from None
  except OSError as e:  # a filesystem without locks (some FUSE mounts)
    lock_file.close()
    tf.logging.warning("cannot lock %s (%s): nothing stops a second trainer "
                       "from writing to %s; make sure only one runs",
                       path, e, model_dir)
    return
  stale = _read_holder(lock_file)
  if stale is not None:
    tf.logging.warning("taking over the stale lock %s of a trainer that is "
                       "gone (%s)", path, _describe(stale))
  lock_file.seek(0)
  lock_file.truncate()
  lock_file.write(json.dumps({
      "host": socket.gethostname(), "pid": os.getpid(),
      "start_time": datetime.datetime.now().isoformat(timespec="seconds")}))
  lock_file.flush()
  _held[key] = lock_file
  atexit.register(release, model_dir)


def release(model_dir):
  """Empties and unlocks model_dir's lock if this process holds it."""
  lock_file = _held.pop(os.path.abspath(model_dir), None)
  if lock_file is None:
    return
  lock_file.truncate(0)
  lock_file.close()  # closing drops the flock

"""aiopar: run CPU-bound work on all cores without leaving the event loop."""

from ._completion import as_completed as as_completed
from ._completion import wait as wait
from ._default import get_default_pool as get_default_pool
from ._default import shutdown as shutdown
from ._functions import amap as amap
from ._functions import amap_chunks as amap_chunks
from ._functions import gather as gather
from ._functions import imap as imap
from ._functions import put as put
from ._functions import remote as remote
from ._functions import starmap as starmap
from ._functions import submit as submit
from ._functions import tree_reduce as tree_reduce
from ._pool import Pool as Pool
from ._remote import RemoteFunction as RemoteFunction
from ._tasks import TaskRef as TaskRef
from ._version import __version__ as __version__
from ._worker import worker_state as worker_state
from .errors import AioparError as AioparError
from .errors import RemoteError as RemoteError
from .errors import ResultLoadError as ResultLoadError
from .errors import TaskExited as TaskExited
from .errors import WorkerCrashedError as WorkerCrashedError

__all__ = [
    "__version__",
    "AioparError",
    "Pool",
    "RemoteError",
    "RemoteFunction",
    "ResultLoadError",
    "TaskExited",
    "TaskRef",
    "WorkerCrashedError",
    "amap",
    "amap_chunks",
    "as_completed",
    "gather",
    "get_default_pool",
    "imap",
    "put",
    "remote",
    "shutdown",
    "starmap",
    "submit",
    "tree_reduce",
    "wait",
    "worker_state",
]

"""Worker side: the code that runs inside the sandboxed child process.

Installed as `plexisandbox_worker`. It imports only the standard library, msgpack and the
pure core (`plexisandbox.interfaces`, `plexisandbox._protocol`, `plexisandbox.errors`) — never
the supervisor, anyio or psutil. A test asserts this on a live worker.
"""

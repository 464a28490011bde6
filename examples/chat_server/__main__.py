"""`python -m examples.chat_server`: serve the demo chat on http://127.0.0.1:$PORT."""

from .run import main

raise SystemExit(main())

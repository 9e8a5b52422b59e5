"""The bench package lives at the repository's root, beside ``tests/`` (whose own ``bench`` folder would
otherwise shadow it as a namespace package)."""

from __future__ import annotations

import sys

from streamwatch_dev.process import REPO_ROOT

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

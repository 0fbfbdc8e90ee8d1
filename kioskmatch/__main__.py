import sys

from kioskmatch.cli import main

sys.exit(main())

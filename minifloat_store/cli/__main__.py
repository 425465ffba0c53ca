import sys

from minifloat_store.cli import main

sys.exit(main())

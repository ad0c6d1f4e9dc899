import sys

from hf_stadyn.cli import main

sys.exit(main())

import sys

from stackyard.cli import main

sys.exit(main())

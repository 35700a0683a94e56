import sys

from dicomweb.cli import main

sys.exit(main())

import sys

from musiclord.cli import main

sys.exit(main())

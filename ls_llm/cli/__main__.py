import sys

from ls_llm.cli import main

sys.exit(main())

import sys

from codeexec_lsp.cli import main

sys.exit(main())

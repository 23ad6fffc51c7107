import sys

from lm_eval_noise.cli import main

sys.exit(main())

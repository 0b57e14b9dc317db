"""Entry points of the evaluation scripts (`scripts/*.py` and `theworld eval ...` call these `main(argv)`)."""

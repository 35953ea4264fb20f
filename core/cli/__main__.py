"""`python -m crossdock.cli`: exactly what the `crossdock` console script runs."""

from crossdock.cli import main

if __name__ == "__main__":  # `python -m crossdock.cli`
    main()

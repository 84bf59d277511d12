from gauntlet.cli import main

if __name__ == "__main__":  # importing the package's entry point must not run it
    raise SystemExit(main())

from graphopt.cli import run_cli

run_cli()

from trainer.cli import app

app()

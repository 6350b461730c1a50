"""The command line (`rag`, `rag eval`, `rag bench`): parse arguments, call the Pipeline, print the result."""

"""Answer: fit the ranked passages into a prompt, stream the model's tokens, check every citation and sentence
against the passages, and hand a finished Answer (text, citations, unbacked claims, timings) to a front end."""

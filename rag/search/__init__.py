"""Search: turn a question into the forms worth searching (as asked, translated, with a follow-up's context), rank
the store's passages by hybrid retrieval with cross-lingual places and an optional reranker, and hand the ranked
passages to the answer stage."""

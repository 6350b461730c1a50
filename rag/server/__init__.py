"""The HTTP front end (`rag serve`): FastAPI with one router per feature, the access rules, and the Gradio UI
and widget from `ui/` mounted beside them."""

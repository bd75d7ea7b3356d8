"""The browser chat: a Gradio page over the `rag` library (built by `ui.app.build_ui`, served by `rag serve`)."""

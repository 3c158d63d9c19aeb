"""The run read side (views, history, logs, artifacts, costs) and the reactions to runs changing."""

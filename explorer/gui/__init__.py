"""The desktop app: thin Qt models, delegates, widgets and workers over explorer.core.
Nothing here computes a metric; everything shown comes from explorer.core."""

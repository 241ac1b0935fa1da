"""Offline side: reads a Shopee-format dataset, embeds it and writes an index bundle."""

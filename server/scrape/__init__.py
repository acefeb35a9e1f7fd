"""What a scrape target is, shared by the API, the config file, the CLI and the collector: pure, no I/O.

``spec`` holds the target and profile-kind model and its checks; ``protocol`` the interface a scraper
offers the server (health, traces), so the server never imports the collector.
"""

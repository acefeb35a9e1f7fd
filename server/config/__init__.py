"""The config file of ``stackyard serve`` and ``collect``: scrape jobs, file-based discovery, and the server's sections.

Split by concern, each module small: ``problems`` (what is wrong, and where), ``yamllines`` (YAML
read with the line of every key), ``validation`` and ``fields`` (strict models, errors in a YAML
user's words), ``targetgroups``, ``scrapejobs`` and ``filesd`` (scrape targets, static and
discovered), ``sections`` (auth tokens, alert rules and receivers), ``preflight`` (names resolved
against the network policy) and ``load`` (the whole file, :func:`server.config.load.load_config`).
Nothing here opens a database: the scrape-only collector reads the same file.
"""

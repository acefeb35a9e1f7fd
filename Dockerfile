# Stackyard image (server and collector): `docker build -t stackyard .`
# The C extensions (the decoder, the stack tree index) are compiled in the build stage (gcc), so the runtime
# stage needs no compiler.
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md alembic.ini ./
COPY server ./server
COPY collector ./collector
COPY stackyard ./stackyard
COPY migrations ./migrations
COPY web ./web
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --home /var/lib/stackyard stackyard && mkdir -p /var/lib/stackyard && chown stackyard /var/lib/stackyard
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /app
COPY alembic.ini ./
COPY migrations ./migrations
COPY web ./web
USER stackyard
ENV STACKYARD_HOST=0.0.0.0 STACKYARD_DATABASE_URL=sqlite:////var/lib/stackyard/stackyard.db
EXPOSE 4180
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:4180/readyz').status == 200 else 1)"
CMD ["stackyard", "serve"]

# skeino with Postgres and Redis support; graphs are mounted at /app (langgraph.json there).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY . /src/skeino
RUN pip install /src/skeino && rm -rf /src/skeino
WORKDIR /app
# Host and port as variables, not flags, so `-e SKEINO_PORT=...` moves a replica (flags would win).
# A non-loopback address needs SKEINO_API_KEYS (or auth.path in langgraph.json).
ENV SKEINO_HOST=0.0.0.0 SKEINO_PORT=2024
EXPOSE 2024
CMD ["skeino", "serve", "--config", "/app/langgraph.json"]

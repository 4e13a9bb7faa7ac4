# skeino with Postgres and Redis support; graphs are mounted at /app (langgraph.json there).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY . /src/skeino
RUN pip install /src/skeino && rm -rf /src/skeino
WORKDIR /app
EXPOSE 2024
# A non-loopback address needs SKEINO_API_KEYS (or auth.path in langgraph.json).
CMD ["skeino", "serve", "--config", "/app/langgraph.json", "--host", "0.0.0.0", "--port", "2024"]

# The choreoctl runtime image: the cluster gateway, the controller manager and every
# cluster agent run it (`choreoctl gateway serve`, `controller run`, `agent run`).
#
#   docker build -t choreoctl/choreoctl:$(python -c 'import choreoctl; print(choreoctl.__version__)') .
#
# Stage 1 builds the wheel (templates and topologies inside it); stage 2 installs only
# that wheel and its dependencies, so no build tools or sources reach the final image.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md ./
COPY choreoctl/ choreoctl/
COPY templates/ templates/
COPY topologies/ topologies/
RUN python -m pip wheel --no-deps --wheel-dir /dist .

FROM python:3.11-slim-bookworm
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /dist/ /dist/
RUN python -m pip install /dist/choreoctl-*.whl \
    && rm -rf /dist \
    && groupadd --gid 10001 choreoctl \
    && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin choreoctl
# The charts run this image with runAsUser 10001 and a read-only root filesystem.
USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["choreoctl"]
CMD ["--help"]

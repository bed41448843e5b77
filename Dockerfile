# lipstream, CPU image: `lipstream edge`, `lipstream inference` (onnxruntime on CPU) or both (`lipstream serve`).
#   docker build -t lipstream .
#   docker run --rm -p 8080:8080 lipstream serve --host 0.0.0.0
# The install steps are deploy/install.sh's, which CI runs too.
FROM python:3.11-slim-bookworm

WORKDIR /opt/lipstream
COPY . .
RUN deploy/install.sh --venv /opt/venv cpu \
    && rm -rf /var/lib/apt/lists/* /root/.cache \
    && useradd --system --create-home --home-dir /var/lib/lipstream lipstream

# Generated models and the bundled avatar are made at the first start, into the cache.
ENV PATH=/opt/venv/bin:$PATH \
    LIPSTREAM_CACHE_DIR=/var/lib/lipstream/cache \
    PYTHONUNBUFFERED=1
USER lipstream
# HTTP (signaling, WHEP, the demo page), gRPC (inference), Prometheus (inference); the edge's ICE ports
# are http.ice_port_range (UDP), published as configured.
EXPOSE 8080 50051 9151
ENTRYPOINT ["lipstream"]
CMD ["serve", "--host", "0.0.0.0"]

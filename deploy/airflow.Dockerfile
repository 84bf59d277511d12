# The Airflow image of a deployment on real infrastructure (deploy/compose.yaml, deploy/helm/values.yaml):
# the official apache/airflow image plus the project's DAGs, plugins and the gauntlet package.
#
#   docker build -f deploy/airflow.Dockerfile -t gauntlet-airflow:3.3.2 .      (BuildKit: the default builder)
#
# Two images, two jobs. This one runs Airflow (API server, scheduler, DAG processor, triggerer, Celery
# workers); the steps never run in it: each task starts a container (compose: Docker) or a pod / MPIJob
# (Kubernetes) of the task image (the project's Dockerfile, target `cpu` or `gpu`), so this image needs
# no torch or Horovod, and the task image no Airflow. What the Airflow side of gauntlet imports (boto3,
# PyYAML, numpy, psutil, docker, kubernetes) the official image has.
#
# Its context is the repository root; deploy/airflow.Dockerfile.dockerignore (read by BuildKit in place
# of .dockerignore, which keeps dags/ and plugins/ out of the task image) lets dags/ and plugins/ in.
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_IMAGE}
# Airflow and its providers at the versions the project is tested with: requirements.lock's pins,
# installed with apache-airflow in the same command so pip cannot move Airflow itself. The rest of the
# image keeps the versions Airflow's own constraints chose for it: the lock describes the whole test
# environment (torch, moto, ...), which is not this image's.
COPY requirements.lock /tmp/gauntlet/requirements.lock
RUN grep -oE '^(apache-airflow[a-z0-9-]*|asyncpg|psycopg2-binary)==[^ ]+' /tmp/gauntlet/requirements.lock \
        > /tmp/gauntlet/airflow-pins.txt \
    && pip install --no-cache-dir -r /tmp/gauntlet/airflow-pins.txt
# The package by path (as in the task image): nothing to build, and its code is what this image carries.
COPY --chown=airflow:0 src/gauntlet/ /opt/gauntlet/src/gauntlet/
COPY --chown=airflow:0 include/ /opt/gauntlet/include/
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
ENV PYTHONPATH=/opt/gauntlet/src \
    GAUNTLET_HOME=/opt/gauntlet
RUN python -c "import gauntlet.airflow.factory, gauntlet.airflow.docker_runtime, gauntlet.airflow.kubernetes_runtime"

"""The five pipeline steps. Each is a plain function `run(...) -> dict` of S3 URIs and config;
none imports Airflow, so the same step runs from a shell, a container or a pod."""

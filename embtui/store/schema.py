"""Versioned DuckDB schema: each migration is a list of statements applied once, in order."""

from __future__ import annotations

# Append new migrations; never edit one that has shipped.
MIGRATIONS: list[list[str]] = [
    # 1: projects, data, model specs, runs and their results, artifacts
    [
        "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
        "CREATE SEQUENCE IF NOT EXISTS project_ids START 1",
        """CREATE TABLE projects (
            id INTEGER PRIMARY KEY DEFAULT nextval('project_ids'),
            name VARCHAR NOT NULL UNIQUE,
            source VARCHAR,
            dataset_hash VARCHAR,
            created_at TIMESTAMP DEFAULT current_timestamp
        )""",
        """CREATE TABLE documents (
            project_id INTEGER NOT NULL,
            doc_id VARCHAR NOT NULL,
            title VARCHAR NOT NULL,
            text VARCHAR NOT NULL,
            PRIMARY KEY (project_id, doc_id)
        )""",
        """CREATE TABLE queries (
            project_id INTEGER NOT NULL,
            query_id VARCHAR NOT NULL,
            text VARCHAR NOT NULL,
            metadata VARCHAR,
            PRIMARY KEY (project_id, query_id)
        )""",
        """CREATE TABLE qrels (
            project_id INTEGER NOT NULL,
            split VARCHAR NOT NULL,
            query_id VARCHAR NOT NULL,
            doc_id VARCHAR NOT NULL,
            grade INTEGER NOT NULL,
            PRIMARY KEY (project_id, split, query_id, doc_id)
        )""",
        """CREATE TABLE models (
            name VARCHAR PRIMARY KEY,
            spec VARCHAR NOT NULL,
            updated_at TIMESTAMP DEFAULT current_timestamp
        )""",
        "CREATE SEQUENCE IF NOT EXISTS run_ids START 1",
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY DEFAULT nextval('run_ids'),
            project_id INTEGER NOT NULL,
            split VARCHAR NOT NULL,
            model_name VARCHAR NOT NULL,
            model_spec VARCHAR,
            model_fingerprint VARCHAR,
            device VARCHAR,
            index_config VARCHAR,
            versions VARCHAR,
            timings VARCHAR,
            info VARCHAR,
            status VARCHAR NOT NULL,
            error VARCHAR,
            created_at TIMESTAMP DEFAULT current_timestamp,
            finished_at TIMESTAMP
        )""",
        """CREATE TABLE run_metrics (
            run_id INTEGER NOT NULL,
            metric VARCHAR NOT NULL,
            value DOUBLE,
            PRIMARY KEY (run_id, metric)
        )""",
        """CREATE TABLE query_metrics (
            run_id INTEGER NOT NULL,
            query_id VARCHAR NOT NULL,
            metric VARCHAR NOT NULL,
            value DOUBLE
        )""",
        """CREATE TABLE rankings (
            run_id INTEGER NOT NULL,
            query_id VARCHAR NOT NULL,
            rank INTEGER NOT NULL,
            doc_id VARCHAR NOT NULL,
            score DOUBLE NOT NULL
        )""",
        """CREATE TABLE artifacts (
            path VARCHAR PRIMARY KEY,
            kind VARCHAR NOT NULL,
            bytes BIGINT,
            meta VARCHAR,
            created_at TIMESTAMP DEFAULT current_timestamp
        )""",
        """CREATE TABLE file_hashes (
            path VARCHAR PRIMARY KEY,
            size BIGINT NOT NULL,
            mtime DOUBLE NOT NULL,
            sha256 VARCHAR NOT NULL
        )""",
    ],
    # 2: background jobs (durable record; live progress is a file per job) and the batch size that
    #    survived an out-of-memory back-off, per model config and device
    [
        """CREATE TABLE IF NOT EXISTS jobs (
            id VARCHAR PRIMARY KEY,
            kind VARCHAR NOT NULL,
            request VARCHAR NOT NULL,
            state VARCHAR NOT NULL,
            run_id INTEGER,
            device VARCHAR,
            pid INTEGER,
            host VARCHAR,
            chunk_texts INTEGER,
            attempts INTEGER NOT NULL DEFAULT 0,
            error VARCHAR,
            created_at TIMESTAMP NOT NULL,
            started_at TIMESTAMP,
            finished_at TIMESTAMP,
            updated_at TIMESTAMP
        )""",
        """CREATE TABLE IF NOT EXISTS batch_sizes (
            model_key VARCHAR NOT NULL,
            device VARCHAR NOT NULL,
            batch_size INTEGER NOT NULL,
            updated_at TIMESTAMP,
            PRIMARY KEY (model_key, device)
        )""",
    ],
    # 3: annotations (labels and notes on a query or a (query, document) pair) and the qrels overlay
    #    (judgments added by hand; the imported qrels are never changed). Both are keyed by project
    #    NAME so they survive re-running models and re-importing the project with --replace.
    [
        "CREATE SEQUENCE IF NOT EXISTS annotation_ids START 1",
        """CREATE TABLE IF NOT EXISTS annotations (
            id INTEGER PRIMARY KEY DEFAULT nextval('annotation_ids'),
            project VARCHAR NOT NULL,
            query_id VARCHAR NOT NULL,
            doc_id VARCHAR,
            label VARCHAR NOT NULL,
            note VARCHAR,
            run_id INTEGER,
            created_at TIMESTAMP DEFAULT current_timestamp,
            updated_at TIMESTAMP DEFAULT current_timestamp
        )""",
        """CREATE TABLE IF NOT EXISTS qrels_overlay (
            project VARCHAR NOT NULL,
            split VARCHAR NOT NULL,
            query_id VARCHAR NOT NULL,
            doc_id VARCHAR NOT NULL,
            grade INTEGER NOT NULL,
            note VARCHAR,
            run_id INTEGER,
            created_at TIMESTAMP DEFAULT current_timestamp,
            PRIMARY KEY (project, split, query_id, doc_id)
        )""",
    ],
    # 4: profiles — what a model costs on this machine (latency, throughput, memory), measured on a
    #    project's texts; one per (project, model, device, precision), the latest kept. Keyed by
    #    project NAME like annotations, so a re-imported project keeps its profiles.
    [
        """CREATE TABLE IF NOT EXISTS profiles (
            project VARCHAR NOT NULL,
            model_name VARCHAR NOT NULL,
            device VARCHAR NOT NULL,
            precision VARCHAR NOT NULL,
            model_spec VARCHAR NOT NULL,
            result VARCHAR NOT NULL,
            created_at TIMESTAMP DEFAULT current_timestamp,
            PRIMARY KEY (project, model_name, device, precision)
        )""",
    ],
    # 5: query logs — production queries without judgments (text, optional UNIX timestamp), named
    #    per project NAME, for drift against the evaluated splits
    [
        """CREATE TABLE IF NOT EXISTS query_logs (
            project VARCHAR NOT NULL,
            log VARCHAR NOT NULL,
            row_no INTEGER NOT NULL,
            text VARCHAR NOT NULL,
            ts DOUBLE,
            PRIMARY KEY (project, log, row_no)
        )""",
    ],
]

SCHEMA_VERSION = len(MIGRATIONS)

//! Record storage: local rotating files and Elasticsearch/OpenSearch with an on-disk spool.

"""A Structured Streaming query as a user writes one, with no streamwatch code in it: Spark's own Kafka
source to the console sink, checkpointing where it is told. It is configured the spark-submit way
(``PYSPARK_SUBMIT_ARGS`` carries ``--jars`` and ``--conf``, S3A's credentials come from the environment),
so the observer sees it exactly as it would see a job it never heard of.

    python plain_spark_job.py BOOTSTRAP_SERVERS TOPIC CHECKPOINT_LOCATION
"""

import sys

from pyspark.sql import SparkSession


def main() -> None:
    bootstrap, topic, checkpoint = sys.argv[1:4]
    spark = SparkSession.builder.appName("plain-console-job").getOrCreate()
    visits = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .load()
    )
    query = (
        visits.selectExpr("partition", "offset", "CAST(value AS STRING) AS visit")
        .writeStream.format("console")
        .option("checkpointLocation", checkpoint)
        .trigger(processingTime="1 second")
        .start()
    )
    query.awaitTermination()


if __name__ == "__main__":
    main()

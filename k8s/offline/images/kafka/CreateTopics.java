import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.errors.TopicExistsException;

/**
 * Creates the topics of KAFKA_TOPICS ("name:partitions,...") on KAFKA_BOOTSTRAP_SERVERS when missing, and
 * checks that every one of them has its partition count: the observer pairs partition p of one topic with
 * partition p of the other, so a topic created by someone else with another count is an error, not a
 * success. Retries while the broker is not there yet, up to KAFKA_WAIT_SECONDS.
 */
public final class CreateTopics {
  private CreateTopics() {}

  public static void main(String[] args) throws InterruptedException {
    String bootstrap = required("KAFKA_BOOTSTRAP_SERVERS");
    Map<String, Integer> wanted = parse(required("KAFKA_TOPICS"));
    short replicas = Short.parseShort(env("KAFKA_TOPIC_REPLICATION_FACTOR", "1"));
    long deadline = System.nanoTime()
        + TimeUnit.SECONDS.toNanos(Long.parseLong(env("KAFKA_WAIT_SECONDS", "300")));
    Properties config = new Properties();
    config.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    config.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
    config.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "15000");
    try (Admin admin = Admin.create(config)) {
      while (true) {
        try {
          int wrong = ensure(admin, wanted, replicas);
          System.exit(wrong == 0 ? 0 : 2);
        } catch (ExecutionException e) {
          if (System.nanoTime() > deadline) {
            System.err.println("kafka-create-topics: " + bootstrap + " did not answer in time: " + e.getCause());
            System.exit(1);
          }
          System.err.println("kafka-create-topics: retrying (" + bootstrap + "): " + e.getCause());
          Thread.sleep(2000);
        }
      }
    }
  }

  /** Creates what is missing, then returns how many topics have another partition count than wanted. */
  private static int ensure(Admin admin, Map<String, Integer> wanted, short replicas)
      throws ExecutionException, InterruptedException {
    Set<String> existing = admin.listTopics().names().get();
    for (Map.Entry<String, Integer> topic : wanted.entrySet()) {
      if (existing.contains(topic.getKey())) {
        continue;
      }
      try {
        admin.createTopics(List.of(new NewTopic(topic.getKey(), topic.getValue(), replicas))).all().get();
        System.out.println("created topic " + topic.getKey() + " with " + topic.getValue() + " partitions");
      } catch (ExecutionException e) {
        if (!(e.getCause() instanceof TopicExistsException)) {
          throw e;
        }
      }
    }
    Map<String, TopicDescription> described = admin.describeTopics(wanted.keySet()).allTopicNames().get();
    int wrong = 0;
    for (Map.Entry<String, Integer> topic : wanted.entrySet()) {
      int partitions = described.get(topic.getKey()).partitions().size();
      if (partitions == topic.getValue()) {
        System.out.println("topic " + topic.getKey() + ": " + partitions + " partitions");
      } else {
        System.err.println("kafka-create-topics: topic " + topic.getKey() + " has " + partitions
            + " partitions, " + topic.getValue() + " wanted (Kafka cannot remove partitions: delete it)");
        wrong++;
      }
    }
    return wrong;
  }

  private static Map<String, Integer> parse(String spec) {
    Map<String, Integer> topics = new LinkedHashMap<>();
    for (String item : spec.split(",")) {
      String[] parts = item.trim().split(":");
      if (parts.length != 2 || parts[0].isEmpty()) {
        throw new IllegalArgumentException("KAFKA_TOPICS: '" + item + "' is not name:partitions");
      }
      topics.put(parts[0], Integer.parseInt(parts[1]));
    }
    return topics;
  }

  private static String required(String name) {
    String value = System.getenv(name);
    if (value == null || value.isBlank()) {
      throw new IllegalArgumentException(name + " is not set");
    }
    return value;
  }

  private static String env(String name, String fallback) {
    String value = System.getenv(name);
    return value == null || value.isBlank() ? fallback : value;
  }
}

package picstats.kstreams;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.streams.KeyValue;

/** --produce: a deterministic feed of valid registrations with known totals. */
final class Feed {
  static final int MIN_WEIGHT = 20; // picstats' datafeed: uniform in [20, 5000)
  static final int MAX_WEIGHT = 5000;

  private Feed() {}

  static void run(Map<String, String> a) throws Exception {
    long n = Main.num(a, "produce", 0);
    long seed = Main.num(a, "seed", 1);
    int pictures = (int) Main.num(a, "pictures", 5000);
    String key = a.getOrDefault("key", "none");
    if (n < 0 || pictures < 1 || !(key.equals("none") || key.equals("picture_id"))) {
      throw new IllegalArgumentException("want --produce N >= 0, --pictures K >= 1, --key none|picture_id");
    }
    boolean dry = a.containsKey("dry-run");
    String bootstrap = dry ? null : Main.need(a, "bootstrap");
    String topic = dry ? null : Main.need(a, "input");

    SplittableRandom rng = new SplittableRandom(seed);
    String[] ids = new String[pictures];
    for (int i = 0; i < pictures; i++) {
      ids[i] = String.format("%012d", rng.nextLong(1_000_000_000_000L));
    }
    Totals t = Totals.EMPTY;
    long start = System.nanoTime();
    if (dry) {
      for (long i = 0; i < n; i++) {
        rng.nextInt(pictures);
        t = t.add(MIN_WEIGHT + rng.nextInt(MAX_WEIGHT - MIN_WEIGHT));
      }
    } else {
      createTopic(bootstrap, topic, (int) Main.num(a, "partitions", 4), Map.of());
      Properties p = new Properties();
      p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
      p.put(ProducerConfig.ACKS_CONFIG, "all");
      p.put(ProducerConfig.LINGER_MS_CONFIG, 20);
      p.put(ProducerConfig.BATCH_SIZE_CONFIG, 256 * 1024);
      AtomicReference<Exception> failed = new AtomicReference<>();
      try (KafkaProducer<byte[], byte[]> producer =
          new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
        for (long i = 0; i < n && failed.get() == null; i++) {
          String id = ids[rng.nextInt(pictures)];
          int w = MIN_WEIGHT + rng.nextInt(MAX_WEIGHT - MIN_WEIGHT);
          t = t.add(w);
          byte[] value = ("{\"picture_id\":\"" + id + "\",\"weight\":" + w + "}").getBytes(StandardCharsets.UTF_8);
          byte[] k = key.equals("picture_id") ? id.getBytes(StandardCharsets.UTF_8) : null;
          producer.send(new ProducerRecord<>(topic, k, value), (md, e) -> {
            if (e != null) {
              failed.compareAndSet(null, e);
            }
          });
        }
        producer.flush();
      }
      if (failed.get() != null) {
        throw failed.get();
      }
      double s = (System.nanoTime() - start) / 1e9;
      System.err.printf("produced %d records to %s in %.2f s (%.0f records/s)%n", n, topic, s, n / s);
    }
    for (KeyValue<String, String> kv : t.statistics()) {
      System.out.println(kv.key + "\t" + kv.value);
    }
  }

  static Admin admin(String bootstrap) {
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    return Admin.create(p);
  }

  /** Creates topic with the given partitions if it does not exist yet. */
  static void createTopic(String bootstrap, String topic, int partitions, Map<String, String> config)
      throws InterruptedException, ExecutionException {
    try (Admin admin = admin(bootstrap)) {
      NewTopic nt = new NewTopic(topic, java.util.Optional.of(partitions), java.util.Optional.empty()).configs(config);
      admin.createTopics(List.of(nt)).all().get();
    } catch (ExecutionException e) {
      if (!(e.getCause() instanceof TopicExistsException)) {
        throw e;
      }
    }
  }

  /**
   * Creates the output topic if missing, like picstats' stats topic: compacted
   * (the latest value per statistic), with as many partitions as the input.
   */
  static void ensureOutputTopic(String bootstrap, String input, String output) {
    try (Admin admin = admin(bootstrap)) {
      int partitions;
      try {
        TopicDescription d = admin.describeTopics(List.of(input)).allTopicNames().get().get(input);
        partitions = d.partitions().size();
      } catch (ExecutionException e) {
        if (e.getCause() instanceof UnknownTopicOrPartitionException) {
          throw new IllegalArgumentException("input topic " + input + " does not exist");
        }
        throw e;
      }
      NewTopic nt = new NewTopic(output, java.util.Optional.of(partitions), java.util.Optional.empty())
          .configs(Map.of("cleanup.policy", "compact"));
      try {
        admin.createTopics(List.of(nt)).all().get();
      } catch (ExecutionException e) {
        if (!(e.getCause() instanceof TopicExistsException)) {
          throw e;
        }
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    } catch (ExecutionException e) {
      throw new IllegalStateException("creating the output topic " + output + ": " + e.getCause(), e.getCause());
    }
  }
}

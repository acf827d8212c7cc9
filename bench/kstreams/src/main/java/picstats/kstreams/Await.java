package picstats.kstreams;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;

/** --await: waits until the output topic's latest values are the expected ones. */
final class Await {
  private Await() {}

  static boolean run(Map<String, String> a) throws Exception {
    Map<String, String> want = new LinkedHashMap<>();
    for (String line : Files.readAllLines(Path.of(Main.need(a, "await")), StandardCharsets.UTF_8)) {
      if (line.isBlank()) {
        continue;
      }
      int tab = line.indexOf('\t');
      if (tab < 0) {
        throw new IllegalArgumentException("expected-output line without a tab: " + line);
      }
      want.put(line.substring(0, tab), line.substring(tab + 1));
    }
    String topic = Main.need(a, "output");
    long timeoutMs = Main.num(a, "timeout-ms", 600_000);

    Properties p = new Properties();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, Main.need(a, "bootstrap"));
    p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
    long start = System.nanoTime();
    long deadline = start + timeoutMs * 1_000_000L;
    Map<String, String> got = new LinkedHashMap<>();
    long records = 0;
    try (KafkaConsumer<String, String> c =
        new KafkaConsumer<>(p, new StringDeserializer(), new StringDeserializer())) {
      List<TopicPartition> parts = new ArrayList<>();
      while (parts.isEmpty() && System.nanoTime() < deadline) { // the app may not have created it yet
        List<PartitionInfo> infos = c.partitionsFor(topic, Duration.ofSeconds(5));
        if (infos != null) {
          for (PartitionInfo i : infos) {
            parts.add(new TopicPartition(topic, i.partition()));
          }
        }
        if (parts.isEmpty()) {
          Thread.sleep(200);
        }
      }
      c.assign(parts);
      c.seekToBeginning(parts);
      while (System.nanoTime() < deadline) {
        for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(100))) {
          records++;
          got.put(r.key(), r.value());
        }
        if (matches(want, got)) {
          System.err.printf("await: expected output after %d ms (%d output records read)%n",
              (System.nanoTime() - start) / 1_000_000, records);
          print(want, got);
          return true;
        }
      }
    }
    System.err.printf("await: timed out after %d ms (%d output records read); got:%n", timeoutMs, records);
    print(want, got);
    return false;
  }

  private static boolean matches(Map<String, String> want, Map<String, String> got) {
    for (Map.Entry<String, String> e : want.entrySet()) {
      if (!e.getValue().equals(got.get(e.getKey()))) {
        return false;
      }
    }
    return true;
  }

  private static void print(Map<String, String> want, Map<String, String> got) {
    for (String k : want.keySet()) {
      System.out.println(k + "\t" + got.get(k));
    }
  }
}

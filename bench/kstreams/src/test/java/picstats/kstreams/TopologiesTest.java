package picstats.kstreams;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.TestInputTopic;
import org.apache.kafka.streams.TestOutputTopic;
import org.apache.kafka.streams.TopologyTestDriver;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class TopologiesTest {
  private static byte[] b(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  @ParameterizedTest
  @ValueSource(strings = {"dsl", "preaggregate"})
  void fourStatistics(String kind) {
    Properties p = new Properties();
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, "test-" + kind);
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, "unused:9092");
    p.put(StreamsConfig.STATE_DIR_CONFIG, "target/test-state/" + kind + "-" + System.nanoTime());
    try (TopologyTestDriver d = new TopologyTestDriver(
        Topologies.build(kind, "picture", "stats", Duration.ofMillis(100)), p)) {
      TestInputTopic<byte[], byte[]> in =
          d.createInputTopic("picture", new ByteArraySerializer(), new ByteArraySerializer());
      TestOutputTopic<String, String> out =
          d.createOutputTopic("stats", new StringDeserializer(), new StringDeserializer());
      in.pipeInput(null, b("{\"picture_id\":\"000000243626\",\"weight\":1778}"));
      in.pipeInput(b("p2"), b("{\"picture_id\":\"p2\",\"weight\":20}"));
      in.pipeInput(null, b("{\"picture_id\":\"p3\",\"weight\":0}")); // invalid: skipped
      in.pipeInput(null, b("garbage"));
      in.pipeInput((byte[]) null, (byte[]) null);
      in.pipeInput(null, b("{\"picture_id\":\"p3\",\"weight\":4999}"));
      d.advanceWallClockTime(Duration.ofMillis(200)); // preaggregate's punctuation
      Map<String, String> latest = out.readKeyValuesToMap();
      assertEquals(Map.of(
          "count", "{\"registrations\":3}",
          "average_weight", "{\"average_weight_grams\":2265.6666666666665,\"total_weight_grams\":6797,\"registrations\":3}",
          "min_weight", "{\"min_weight_grams\":20}",
          "max_weight", "{\"max_weight_grams\":4999}"), latest);
    }
  }

  @org.junit.jupiter.api.Test
  void integralAverageHasNoFraction() {
    Totals t = Totals.EMPTY.add(10).add(30);
    assertEquals(List.of("count", "average_weight", "min_weight", "max_weight"),
        t.statistics().stream().map(kv -> kv.key).toList());
    assertEquals("{\"average_weight_grams\":20,\"total_weight_grams\":40,\"registrations\":2}",
        t.statistics().get(1).value);
  }
}

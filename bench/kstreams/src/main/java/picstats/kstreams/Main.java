package picstats.kstreams;

import java.io.PrintStream;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;

/**
 * picstats-kstreams: picstats' count, average_weight, min_weight and max_weight
 * with Kafka Streams. Three modes, see {@link #USAGE}.
 */
public final class Main {
  static final String USAGE = """
      Usage:
        java -jar picstats-kstreams.jar --bootstrap HOST:PORT --input TOPIC --output TOPIC \\
            --application-id ID --guarantee at_least_once|exactly_once_v2 \\
            [--commit-interval-ms N] [--threads N] [--cache-bytes N] [--state-dir DIR] \\
            [--topology dsl|preaggregate] [--no-create-output]
          Runs the Streams app. Prints RUNNING on stdout once the app is RUNNING;
          SIGTERM/SIGINT close it cleanly (then exit status 143/130, as any JVM; 1 after
          a fatal Streams error). Defaults: --commit-interval-ms 100,
          --threads 2, --cache-bytes 67108864 (64 MiB), --topology dsl, the state
          directory of Kafka Streams (java.io.tmpdir/kafka-streams). The output topic
          is created if missing (compacted, as many partitions as the input).

        java -jar picstats-kstreams.jar --produce N --bootstrap HOST:PORT --input TOPIC \\
            [--seed S] [--partitions P] [--key none|picture_id] [--pictures K] [--dry-run]
          Produces N valid registrations (weights uniform in [20, 5000) grams, like
          picstats' datafeed; ids drawn from K pictures, default 5000), creating the
          topic with P partitions (default 4) if missing, then prints the expected
          final output, one "key<TAB>value" line per statistic. --dry-run only prints.

        java -jar picstats-kstreams.jar --await FILE --bootstrap HOST:PORT --output TOPIC \\
            [--timeout-ms T]
          Reads the output topic from the beginning (read_committed) until the latest
          value of every key listed in FILE ("key<TAB>value" lines, as --produce prints)
          equals its value there; exit 0 then, 1 on timeout (default 600000 ms).
      """;

  private Main() {}

  public static void main(String[] argv) throws Exception {
    Map<String, String> a;
    try {
      a = parse(argv);
    } catch (IllegalArgumentException e) {
      System.err.println("picstats-kstreams: " + e.getMessage());
      System.err.print(USAGE);
      System.exit(2);
      return;
    }
    if (a.containsKey("help")) {
      System.out.print(USAGE);
      return;
    }
    try {
      if (a.containsKey("produce")) {
        Feed.run(a);
      } else if (a.containsKey("await")) {
        System.exit(Await.run(a) ? 0 : 1);
      } else {
        System.exit(runStreams(a));
      }
    } catch (IllegalArgumentException e) {
      System.err.println("picstats-kstreams: " + e.getMessage());
      System.exit(2);
    }
  }

  private static final java.util.Set<String> FLAGS = java.util.Set.of("dry-run", "no-create-output", "help");
  private static final java.util.Set<String> OPTIONS = java.util.Set.of(
      "bootstrap", "input", "output", "application-id", "guarantee", "commit-interval-ms", "threads",
      "cache-bytes", "state-dir", "topology", "produce", "seed", "partitions", "key", "pictures",
      "await", "timeout-ms");

  static Map<String, String> parse(String[] argv) {
    Map<String, String> a = new HashMap<>();
    for (int i = 0; i < argv.length; i++) {
      String arg = argv[i];
      if (arg.equals("-h")) {
        arg = "--help";
      }
      if (!arg.startsWith("--")) {
        throw new IllegalArgumentException("unexpected argument " + arg);
      }
      String name = arg.substring(2);
      String value;
      int eq = name.indexOf('=');
      if (eq >= 0) {
        value = name.substring(eq + 1);
        name = name.substring(0, eq);
      } else if (FLAGS.contains(name)) {
        value = "true";
      } else if (i + 1 < argv.length) {
        value = argv[++i];
      } else {
        throw new IllegalArgumentException(arg + " needs a value");
      }
      if (!FLAGS.contains(name) && !OPTIONS.contains(name)) {
        throw new IllegalArgumentException("unknown option --" + name);
      }
      a.put(name, value);
    }
    return a;
  }

  static String need(Map<String, String> a, String name) {
    String v = a.get(name);
    if (v == null || v.isEmpty()) {
      throw new IllegalArgumentException("--" + name + " is required");
    }
    return v;
  }

  static long num(Map<String, String> a, String name, long def) {
    String v = a.get(name);
    if (v == null) {
      return def;
    }
    try {
      return Long.parseLong(v);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("--" + name + " " + v + ": not an integer");
    }
  }

  /** The Streams configuration, from the command line. */
  static Properties streamsConfig(Map<String, String> a) {
    String guarantee = need(a, "guarantee");
    if (!guarantee.equals(StreamsConfig.AT_LEAST_ONCE) && !guarantee.equals(StreamsConfig.EXACTLY_ONCE_V2)) {
      throw new IllegalArgumentException("--guarantee " + guarantee + ": want at_least_once or exactly_once_v2");
    }
    Properties p = new Properties();
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, need(a, "application-id"));
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, need(a, "bootstrap"));
    p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
    // 100 ms for both guarantees (Kafka's default for exactly_once_v2; its
    // at_least_once default is 30 s). With the record cache on and one hot key,
    // the aggregate is only emitted when the cache is flushed, that is on
    // commit: the commit interval is the output's latency. See README.md.
    p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, num(a, "commit-interval-ms", 100));
    p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, num(a, "cache-bytes", 64L << 20));
    p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, (int) num(a, "threads", 2));
    if (a.containsKey("state-dir")) {
      p.put(StreamsConfig.STATE_DIR_CONFIG, a.get("state-dir"));
    }
    return p;
  }

  static int runStreams(Map<String, String> a) throws InterruptedException {
    Properties props = streamsConfig(a);
    String input = need(a, "input");
    String output = need(a, "output");
    String kind = a.getOrDefault("topology", "dsl");
    long commitMs = ((Number) props.get(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG)).longValue();
    Topology topology = Topologies.build(kind, input, output, Duration.ofMillis(Math.max(commitMs, 1)));
    if (!a.containsKey("no-create-output")) {
      Feed.ensureOutputTopic(need(a, "bootstrap"), input, output);
    }

    KafkaStreams streams = new KafkaStreams(topology, props);
    PrintStream out = System.out;
    CountDownLatch stopped = new CountDownLatch(1);
    AtomicBoolean running = new AtomicBoolean();
    AtomicBoolean closing = new AtomicBoolean();
    AtomicInteger exit = new AtomicInteger();
    streams.setStateListener((now, before) -> {
      if (now == KafkaStreams.State.RUNNING && running.compareAndSet(false, true)) {
        out.println("RUNNING");
        out.flush();
      }
      if (now == KafkaStreams.State.ERROR || (now == KafkaStreams.State.NOT_RUNNING && !closing.get())) {
        exit.set(1); // a fatal error: the app is down
        stopped.countDown();
      }
    });
    streams.setUncaughtExceptionHandler(e -> {
      System.err.println("picstats-kstreams: fatal: " + e);
      e.printStackTrace();
      return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
    });
    Thread hook = new Thread(() -> {
      closing.set(true);
      streams.close(Duration.ofSeconds(60));
      stopped.countDown();
    }, "picstats-kstreams-shutdown");
    Runtime.getRuntime().addShutdownHook(hook);
    streams.start();
    stopped.await();
    if (!closing.get()) { // failed on its own: close without waiting for the hook
      streams.close(Duration.ofSeconds(10));
    }
    return exit.get();
  }
}

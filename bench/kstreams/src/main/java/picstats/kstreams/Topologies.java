package picstats.kstreams;

import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Function;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Named;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.processor.PunctuationType;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;

/**
 * The two topologies. Both read the picture topic as raw bytes (so no record
 * can fail deserialization), keep only valid registrations, aggregate them
 * under one constant key in a changelog-backed, cached key-value store, and
 * write the four statistics of each emitted aggregate to the output topic.
 *
 * <p>Internal topics (prefix = application.id):
 * dsl: {@code <id>-weights-repartition}, {@code <id>-totals-changelog};
 * preaggregate: {@code <id>-partials-changelog}, {@code <id>-partials-repartition},
 * {@code <id>-totals-changelog}.
 */
public final class Topologies {
  /** The single key every registration is aggregated under. */
  static final String ALL = "all";

  private Topologies() {}

  public static Topology build(String kind, String input, String output, Duration emitInterval) {
    return switch (kind) {
      case "dsl" -> dsl(input, output);
      case "preaggregate" -> preaggregate(input, output, emitInterval);
      default -> throw new IllegalArgumentException("unknown topology " + kind + ": want dsl or preaggregate");
    };
  }

  /**
   * The textbook design: weight of each valid record → groupBy a constant key
   * (through a repartition topic) → aggregate into a store → toStream →
   * flatMap to the four statistics → to(output). The record cache absorbs the
   * updates of the single key between commits, so each commit emits one
   * aggregate, that is four output records.
   */
  static Topology dsl(String input, String output) {
    StreamsBuilder b = new StreamsBuilder();
    b.stream(input, Consumed.with(Serdes.ByteArray(), Serdes.ByteArray()).withName("pictures"))
        .mapValues(Registration::weight, Named.as("parse"))
        .filter((k, w) -> w != Registration.INVALID, Named.as("valid"))
        .groupBy((k, w) -> ALL, Grouped.with("weights", Serdes.String(), Serdes.Long()))
        .aggregate(
            () -> Totals.EMPTY,
            (k, w, t) -> t.add(w),
            Named.as("aggregate"),
            Materialized.<String, Totals, KeyValueStore<Bytes, byte[]>>as("totals")
                .withKeySerde(Serdes.String())
                .withValueSerde(Totals.serde()))
        .toStream(Named.as("updates"))
        .flatMap((k, t) -> t.statistics(), Named.as("statistics"))
        .to(output, Produced.with(Serdes.String(), Serdes.String()).withName("stats"));
    return b.build();
  }

  /**
   * Pre-aggregation per input partition, to keep the per-record work local: a
   * Processor API stage keeps the running Totals of its task's partition in a
   * cached, changelog-backed store and, on a wall-clock punctuation, forwards
   * that running total (not a delta) if it changed. The DSL then groups these
   * few records under the constant key and keeps the latest Totals of each
   * partition (a map), emitting their merge. Forwarding running totals keyed by
   * partition makes a replay harmless: it replaces a partition's entry.
   */
  static Topology preaggregate(String input, String output, Duration emitInterval) {
    StreamsBuilder b = new StreamsBuilder();
    b.addStateStore(Stores.keyValueStoreBuilder(
            Stores.persistentKeyValueStore("partials"), Serdes.Integer(), Totals.serde())
        .withCachingEnabled());
    KStream<byte[], byte[]> pictures =
        b.stream(input, Consumed.with(Serdes.ByteArray(), Serdes.ByteArray()).withName("pictures"));
    pictures
        .process(() -> new PartitionTotals(emitInterval), Named.as("partition-totals"), "partials")
        .groupByKey(Grouped.with("partials", Serdes.String(), PARTIAL_SERDE))
        .aggregate(
            PartitionMap::new,
            (k, p, m) -> m.with(p),
            Named.as("aggregate"),
            Materialized.<String, PartitionMap, KeyValueStore<Bytes, byte[]>>as("totals")
                .withKeySerde(Serdes.String())
                .withValueSerde(PARTITION_MAP_SERDE))
        .toStream(Named.as("updates"))
        .flatMap((k, m) -> m.total().statistics(), Named.as("statistics"))
        .to(output, Produced.with(Serdes.String(), Serdes.String()).withName("stats"));
    return b.build();
  }

  /** The running Totals of one input partition. */
  record Partial(int partition, Totals totals) {}

  /** Stage 1 of preaggregate: one instance per task, that is per input partition. */
  static final class PartitionTotals implements Processor<byte[], byte[], String, Partial> {
    private final Duration emitInterval;
    private ProcessorContext<String, Partial> ctx;
    private KeyValueStore<Integer, Totals> store;
    private int partition;
    private Totals totals;
    private boolean dirty;

    PartitionTotals(Duration emitInterval) {
      this.emitInterval = emitInterval;
    }

    @Override
    public void init(ProcessorContext<String, Partial> context) {
      ctx = context;
      store = context.getStateStore("partials");
      partition = context.taskId().partition();
      Totals restored = store.get(partition);
      totals = restored == null ? Totals.EMPTY : restored;
      dirty = restored != null; // re-forward after a restart: it only replaces
      context.schedule(emitInterval, PunctuationType.WALL_CLOCK_TIME, now -> emit(now));
    }

    @Override
    public void process(Record<byte[], byte[]> r) {
      long w = Registration.weight(r.value());
      if (w == Registration.INVALID) {
        return;
      }
      totals = totals.add(w);
      store.put(partition, totals); // into the record cache; flushed to RocksDB + changelog on commit
      dirty = true;
    }

    private void emit(long now) {
      if (dirty) {
        ctx.forward(new Record<>(ALL, new Partial(partition, totals), now));
        dirty = false;
      }
    }
  }

  /** Stage 2 of preaggregate: the latest Totals of each input partition. Immutable. */
  static final class PartitionMap {
    final TreeMap<Integer, Totals> byPartition;

    PartitionMap() {
      this(new TreeMap<>());
    }

    PartitionMap(TreeMap<Integer, Totals> m) {
      byPartition = m;
    }

    PartitionMap with(Partial p) {
      TreeMap<Integer, Totals> m = new TreeMap<>(byPartition);
      m.put(p.partition(), p.totals());
      return new PartitionMap(m);
    }

    Totals total() {
      Totals t = Totals.EMPTY;
      for (Totals p : byPartition.values()) {
        t = t.merge(p);
      }
      return t;
    }
  }

  /** A serde that writes with write and reads with read; null stays null both ways. */
  static <T> Serde<T> nullSafe(Function<T, byte[]> write, Function<ByteBuffer, T> read) {
    return Serdes.serdeFrom(
        (Serializer<T>) (topic, v) -> v == null ? null : write.apply(v),
        (Deserializer<T>) (topic, data) -> data == null ? null : read.apply(ByteBuffer.wrap(data)));
  }

  static final Serde<Partial> PARTIAL_SERDE = nullSafe(
      p -> {
        ByteBuffer b = ByteBuffer.allocate(4 + Totals.BYTES);
        b.putInt(p.partition());
        Totals.write(b, p.totals());
        return b.array();
      },
      b -> new Partial(b.getInt(), Totals.read(b)));

  static final Serde<PartitionMap> PARTITION_MAP_SERDE = nullSafe(
      m -> {
        ByteBuffer b = ByteBuffer.allocate(4 + m.byPartition.size() * (4 + Totals.BYTES));
        b.putInt(m.byPartition.size());
        for (Map.Entry<Integer, Totals> e : m.byPartition.entrySet()) {
          b.putInt(e.getKey());
          Totals.write(b, e.getValue());
        }
        return b.array();
      },
      b -> {
        int n = b.getInt();
        TreeMap<Integer, Totals> m = new TreeMap<>();
        for (int i = 0; i < n; i++) {
          m.put(b.getInt(), Totals.read(b));
        }
        return new PartitionMap(m);
      });
}

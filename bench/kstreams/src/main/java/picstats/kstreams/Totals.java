package picstats.kstreams;

import java.nio.ByteBuffer;
import java.util.List;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.streams.KeyValue;

/**
 * The aggregate behind the four statistics: count, exact sum (long), min and
 * max of the weights of valid registrations. Immutable; 32 bytes on the wire.
 */
public final class Totals {
  public static final Totals EMPTY = new Totals(0, 0, Long.MAX_VALUE, Long.MIN_VALUE);

  public final long count;
  public final long sum; // grams; weights <= 10^6 keep it exact up to 9*10^12 records
  public final long min;
  public final long max;

  public Totals(long count, long sum, long min, long max) {
    this.count = count;
    this.sum = sum;
    this.min = min;
    this.max = max;
  }

  public Totals add(long weight) {
    return new Totals(count + 1, sum + weight, Math.min(min, weight), Math.max(max, weight));
  }

  public Totals merge(Totals o) {
    return new Totals(count + o.count, sum + o.sum, Math.min(min, o.min), Math.max(max, o.max));
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof Totals t && t.count == count && t.sum == sum && t.min == min && t.max == max;
  }

  @Override
  public int hashCode() {
    return Long.hashCode(count * 31 + sum);
  }

  @Override
  public String toString() {
    return "Totals{count=" + count + ", sum=" + sum + ", min=" + min + ", max=" + max + "}";
  }

  // --- the statistics, in picstats' JSON shapes ---

  /** Output keys, in the order they are written. */
  public static final List<String> KEYS = List.of("count", "average_weight", "min_weight", "max_weight");

  /** The four output records (key = statistic name, value = picstats' JSON). */
  public List<KeyValue<String, String>> statistics() {
    return List.of(
        KeyValue.pair("count", "{\"registrations\":" + count + "}"),
        KeyValue.pair(
            "average_weight",
            "{\"average_weight_grams\":" + average() + ",\"total_weight_grams\":" + sum
                + ",\"registrations\":" + count + "}"),
        KeyValue.pair("min_weight", "{\"min_weight_grams\":" + (count == 0 ? "null" : min) + "}"),
        KeyValue.pair("max_weight", "{\"max_weight_grams\":" + (count == 0 ? "null" : max) + "}"));
  }

  /**
   * sum/count as a JSON number. Like Go's encoding/json, an integral value has
   * no ".0"; otherwise Java's Double.toString (weights keep the mean in
   * [1, 10^6], so no exponent), which may differ from Go in the last digit:
   * compare total_weight_grams and registrations, which are exact.
   */
  String average() {
    if (count == 0) {
      return "null";
    }
    double avg = (double) sum / (double) count;
    if (avg == Math.rint(avg) && Math.abs(avg) < 1e15) {
      return Long.toString((long) avg);
    }
    return Double.toString(avg);
  }

  // --- serde ---

  static void write(ByteBuffer b, Totals t) {
    b.putLong(t.count).putLong(t.sum).putLong(t.min).putLong(t.max);
  }

  static Totals read(ByteBuffer b) {
    return new Totals(b.getLong(), b.getLong(), b.getLong(), b.getLong());
  }

  public static final int BYTES = 32;

  public static final Serializer<Totals> SERIALIZER = (topic, t) -> {
    if (t == null) {
      return null;
    }
    ByteBuffer b = ByteBuffer.allocate(BYTES);
    write(b, t);
    return b.array();
  };

  public static final Deserializer<Totals> DESERIALIZER =
      (topic, data) -> data == null ? null : read(ByteBuffer.wrap(data));

  public static Serde<Totals> serde() {
    return Serdes.serdeFrom(SERIALIZER, DESERIALIZER);
  }
}

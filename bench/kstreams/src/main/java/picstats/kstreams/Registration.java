package picstats.kstreams;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import java.nio.charset.StandardCharsets;

/**
 * Parses and validates one value of the picture topic, with picstats' rules
 * (codec/codec.go): a JSON object with "picture_id", a non-empty string of at
 * most 128 bytes of printable UTF-8, and "weight", an integer number of grams
 * in [1, 1,000,000]. Other members are tolerated; a repeated member counts
 * with its last value, as with Go's encoding/json. Anything else (null,
 * malformed JSON, a quoted or fractional weight, trailing garbage) is invalid.
 *
 * <p>Only the weight is needed by the four statistics, so {@link #weight}
 * returns it, or {@link #INVALID}; it never throws.
 */
public final class Registration {
  public static final long INVALID = -1;
  public static final int MAX_PICTURE_ID_BYTES = 128;
  public static final long MAX_WEIGHT_GRAMS = 1_000_000;

  // Jackson's streaming parser: no tree, no data binding. A JsonFactory is
  // thread-safe and recycles its buffers per thread.
  private static final JsonFactory JSON = JsonFactory.builder().build();

  private Registration() {}

  /** The weight in grams of a valid registration, or INVALID. */
  public static long weight(byte[] value) {
    if (value == null || value.length == 0) {
      return INVALID;
    }
    try (JsonParser p = JSON.createParser(value)) {
      if (p.nextToken() != JsonToken.START_OBJECT) {
        return INVALID;
      }
      String id = null; // the last picture_id if it was a string
      boolean idSeen = false;
      long weight = INVALID; // the last weight if it was an in-range integer
      for (JsonToken t = p.nextToken(); t != JsonToken.END_OBJECT; t = p.nextToken()) {
        if (t != JsonToken.FIELD_NAME) {
          return INVALID;
        }
        String name = p.currentName();
        JsonToken v = p.nextToken();
        if (v == null) {
          return INVALID;
        }
        switch (name) {
          case "picture_id":
            idSeen = v != JsonToken.VALUE_NULL;
            id = v == JsonToken.VALUE_STRING ? p.getText() : null;
            break;
          case "weight":
            weight = INVALID;
            if (v == JsonToken.VALUE_NUMBER_INT) {
              JsonParser.NumberType nt = p.getNumberType();
              if (nt == JsonParser.NumberType.INT || nt == JsonParser.NumberType.LONG) {
                long w = p.getLongValue();
                if (w >= 1 && w <= MAX_WEIGHT_GRAMS) {
                  weight = w;
                }
              }
            }
            break;
          default:
            p.skipChildren(); // an object or array value: skip it whole
        }
      }
      if (p.nextToken() != null) { // trailing content after the object
        return INVALID;
      }
      if (!idSeen || id == null || !validId(id)) {
        return INVALID;
      }
      return weight;
    } catch (Exception e) { // malformed JSON, invalid UTF-8, limits: never crash
      return INVALID;
    }
  }

  /** Go's checkID: non-empty, at most 128 UTF-8 bytes, printable (unicode.IsPrint). */
  static boolean validId(String id) {
    if (id.isEmpty()) {
      return false;
    }
    boolean ascii = true;
    for (int i = 0; i < id.length(); i++) {
      char c = id.charAt(i);
      if (c < ' ' || c > '~') {
        ascii = false;
        break;
      }
    }
    if (ascii) {
      return id.length() <= MAX_PICTURE_ID_BYTES;
    }
    if (id.getBytes(StandardCharsets.UTF_8).length > MAX_PICTURE_ID_BYTES) {
      return false;
    }
    for (int i = 0; i < id.length(); ) {
      int cp = id.codePointAt(i);
      if (!printable(cp)) {
        return false;
      }
      i += Character.charCount(cp);
    }
    return true;
  }

  /** Go's unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space. */
  private static boolean printable(int cp) {
    if (cp == ' ') {
      return true;
    }
    switch (Character.getType(cp)) {
      case Character.UPPERCASE_LETTER:
      case Character.LOWERCASE_LETTER:
      case Character.TITLECASE_LETTER:
      case Character.MODIFIER_LETTER:
      case Character.OTHER_LETTER:
      case Character.NON_SPACING_MARK:
      case Character.ENCLOSING_MARK:
      case Character.COMBINING_SPACING_MARK:
      case Character.DECIMAL_DIGIT_NUMBER:
      case Character.LETTER_NUMBER:
      case Character.OTHER_NUMBER:
      case Character.CONNECTOR_PUNCTUATION:
      case Character.DASH_PUNCTUATION:
      case Character.START_PUNCTUATION:
      case Character.END_PUNCTUATION:
      case Character.INITIAL_QUOTE_PUNCTUATION:
      case Character.FINAL_QUOTE_PUNCTUATION:
      case Character.OTHER_PUNCTUATION:
      case Character.MATH_SYMBOL:
      case Character.CURRENCY_SYMBOL:
      case Character.MODIFIER_SYMBOL:
      case Character.OTHER_SYMBOL:
        return true;
      default:
        return false;
    }
  }
}

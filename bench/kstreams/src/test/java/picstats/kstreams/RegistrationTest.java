package picstats.kstreams;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class RegistrationTest {
  private static long w(String json) {
    return Registration.weight(json == null ? null : json.getBytes(StandardCharsets.UTF_8));
  }

  @Test
  void valid() {
    assertEquals(1778, w("{\"picture_id\":\"000000243626\",\"weight\":1778}"));
    assertEquals(1778, w(" { \"weight\" : 1778 , \"picture_id\" : \"x\" } \n"));
    assertEquals(1, w("{\"picture_id\":\"a\",\"weight\":1,\"extra\":{\"n\":[1,2]}}"));
    assertEquals(1_000_000, w("{\"picture_id\":\"a\",\"weight\":1000000}"));
    assertEquals(5, w("{\"picture_id\":\"caf\\u00e9 \\\"q\\\"\",\"weight\":5}"));
    assertEquals(7, w("{\"picture_id\":\"a\",\"weight\":\"x\",\"weight\":7}")); // last member wins, as in Go
    assertEquals(9, w("{\"picture_id\":\"" + "x".repeat(128) + "\",\"weight\":9}"));
  }

  @Test
  void invalid() {
    String[] bad = {
      null, "", "   ", "null", "[]", "42", "\"s\"", "{", "{}", "not json",
      "{\"picture_id\":\"a\"}", "{\"weight\":5}",
      "{\"picture_id\":null,\"weight\":5}", "{\"picture_id\":\"\",\"weight\":5}",
      "{\"picture_id\":7,\"weight\":5}", "{\"picture_id\":\"a\",\"weight\":null}",
      "{\"picture_id\":\"a\",\"weight\":0}", "{\"picture_id\":\"a\",\"weight\":-3}",
      "{\"picture_id\":\"a\",\"weight\":1000001}", "{\"picture_id\":\"a\",\"weight\":\"5\"}",
      "{\"picture_id\":\"a\",\"weight\":5.0}", "{\"picture_id\":\"a\",\"weight\":1e3}",
      "{\"picture_id\":\"a\",\"weight\":99999999999999999999999}",
      "{\"picture_id\":\"a\",\"weight\":5} x", "{\"picture_id\":\"a\",\"weight\":5}{}",
      "{\"picture_id\":\"a\",\"weight\":05}", "{\"picture_id\":\"a\\u0007\",\"weight\":5}",
      "{\"picture_id\":\"" + "x".repeat(129) + "\",\"weight\":9}",
      "{\"picture_id\":\"a\",\"weight\":5,}",
    };
    for (String s : bad) {
      assertEquals(Registration.INVALID, w(s), s);
    }
    assertEquals(Registration.INVALID, Registration.weight(new byte[] {'{', '"', (byte) 0xff, '"', ':', '1', '}'}));
  }
}

"""Email rendering internals; the public interface is notifier.render."""

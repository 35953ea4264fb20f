"""Built-in destination plugins. Each sub-package is registered through the `crossdock`
entry-point group, exactly as a third-party plugin would be."""

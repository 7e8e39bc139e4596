"""Everything that measures generated images: the feature networks (domain encoder, Inception),
the scores computed from them, the evaluator a unit calls, the training-curve events, and the
validation suite that decides which of these can be trusted."""

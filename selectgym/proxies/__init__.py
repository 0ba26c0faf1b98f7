"""Proxy models and the features they give: gradients, projections, rollouts, rewards, log-ratios."""

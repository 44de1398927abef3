DROP TABLE alert_actions;
DROP TABLE alerts;

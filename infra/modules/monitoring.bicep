// Log Analytics + workspace-based Application Insights. Local (instrumentation key) auth is
// off: the app sends telemetry with its identity (Monitoring Metrics Publisher).
param workspaceName string
param insightsName string
param location string
param tags object
@description('The app identity that sends telemetry.')
param principalId string

@description('Days Log Analytics keeps data (30 is included in the price).')
param retentionDays int = 30

var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: retentionDays
    features: { disableLocalAuth: true }
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: insightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true
  }
}

resource publisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(insights.id, principalId, monitoringMetricsPublisher)
  scope: insights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Not a secret: with local auth off it only names where telemetry goes (ingestion needs a token).
output connectionString string = insights.properties.ConnectionString
output insightsName string = insights.name

// Event Grid, both ways.
// In: a system topic on the storage account sends the DICOM container's BlobCreated events to a
// storage queue, delivered with the topic's own identity (Queue Data Message Sender), and the
// app's queue trigger hands each to the indexer. Why a queue and not the blob trigger's webhook:
// see docs/deploy.md ("Why Event Grid delivers to a queue").
// Out: a custom topic (CloudEvents 1.0, keys off) the app publishes change events to with its
// identity (EventGrid Data Sender).
param systemTopicName string
param changeTopicName string
param location string
param tags object
param storageAccountName string
param dicomContainer string
param blobEventsQueue string
@description('The app identity.')
param principalId string

var storageQueueDataMessageSender = 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a'
var eventGridDataSender = 'd5a91429-5739-47e2-a06b-3470a27159e7'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: systemTopicName
  location: location
  tags: tags
  identity: { type: 'SystemAssigned' }
  properties: {
    source: account.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

resource topicSendsToQueue 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, systemTopic.id, storageQueueDataMessageSender)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataMessageSender)
    principalId: systemTopic.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource blobCreated 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = {
  parent: systemTopic
  name: 'blob-created-to-queue'
  dependsOn: [topicSendsToQueue]
  properties: {
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: ['Microsoft.Storage.BlobCreated']
      subjectBeginsWith: '/blobServices/default/containers/${dicomContainer}/blobs/'
    }
    retryPolicy: { maxDeliveryAttempts: 30, eventTimeToLiveInMinutes: 1440 }
    deliveryWithResourceIdentity: {
      identity: { type: 'SystemAssigned' }
      destination: {
        endpointType: 'StorageQueue'
        properties: {
          resourceId: account.id
          queueName: blobEventsQueue
          queueMessageTimeToLiveInSeconds: -1
        }
      }
    }
  }
}

resource changeTopic 'Microsoft.EventGrid/topics@2025-02-15' = {
  name: changeTopicName
  location: location
  tags: tags
  identity: { type: 'SystemAssigned' }
  properties: {
    inputSchema: 'CloudEventSchemaV1_0'
    disableLocalAuth: true
    minimumTlsVersionAllowed: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

resource appPublishes 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(changeTopic.id, principalId, eventGridDataSender)
  scope: changeTopic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventGridDataSender)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output changeTopicName string = changeTopic.name
output changeTopicEndpoint string = changeTopic.properties.endpoint
